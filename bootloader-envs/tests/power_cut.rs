//! Power cut after every erase/write operation of a save: the environment found at the
//! next boot must be the old or the new one (redundant layouts), never missing or mixed.
//! A single-copy environment cannot give that guarantee; the last test shows why.

use std::cell::RefCell;
use std::rc::Rc;

use liminix_bootenv::flash::{Flash, FlashInfo, FlashKind, PowerCutFlash, RamFlash};
use liminix_bootenv::storage::{CopyDevice, FileCopy, MtdCopy};
use liminix_bootenv::{Endian, Env, EnvError, EnvStore, FlagScheme, Layout, SelectRule};

/// Both copies sit on one chip, so the chip is shared between two [`MtdCopy`]s.
#[derive(Clone)]
struct Chip(Rc<RefCell<PowerCutFlash<RamFlash>>>);

impl Flash for Chip {
    fn info(&self) -> FlashInfo {
        self.0.borrow().info()
    }
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.borrow_mut().read_at(off, buf)
    }
    fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.borrow_mut().write_at(off, data)
    }
    fn erase(&mut self, off: u64, len: u64) -> std::io::Result<()> {
        self.0.borrow_mut().erase(off, len)
    }
    fn is_bad(&mut self, off: u64) -> std::io::Result<bool> {
        self.0.borrow_mut().is_bad(off)
    }
}

const ENV: usize = 0x800;

fn env_with(gen: u32) -> Env {
    let mut e = Env::from_text(b"bootcmd=run boot_a\nbootdelay=1\n").unwrap();
    e.set(b"generation", gen.to_string().as_bytes()).unwrap();
    // long enough that a torn write lands inside the variables
    e.set(b"padding", "x".repeat(700 + gen as usize).as_bytes())
        .unwrap();
    e
}

/// Copies at block 0 and block 3 (NAND: each may use 2 blocks, block 0 is bad).
fn store_on(chip: &Chip, redundant: bool) -> EnvStore {
    let nand = chip.info().kind == FlashKind::Nand;
    let es = chip.info().erase_size;
    let sectors = if nand { 2 } else { 1 };
    let mut copies: Vec<Box<dyn CopyDevice>> =
        vec![Box::new(MtdCopy::new(chip.clone(), "chip", 0, es, sectors))];
    if redundant {
        copies.push(Box::new(MtdCopy::new(
            chip.clone(),
            "chip",
            3 * es,
            es,
            sectors,
        )));
    }
    EnvStore::new(Layout::new(ENV, redundant, Endian::Big).unwrap(), copies).unwrap()
}

fn chip(ram: RamFlash, budget: Option<usize>) -> Chip {
    Chip(Rc::new(RefCell::new(PowerCutFlash::new(ram, budget))))
}

fn fresh(kind: FlashKind, saves: u32) -> RamFlash {
    let mut ram = match kind {
        FlashKind::Nor => RamFlash::new(kind, 0x4000, 0x800, 1),
        FlashKind::Nand => RamFlash::new(kind, 0x4000, 0x800, 0x200),
    };
    if kind == FlashKind::Nand {
        ram.mark_bad(0); // copy 0 must skip to the second block of its window
    }
    let c = chip(ram, None);
    let mut st = store_on(&c, true);
    for g in 0..saves {
        st.save(&env_with(g)).unwrap();
    }
    let inner = c.0.borrow().inner.clone();
    if kind == FlashKind::Nand && saves >= 2 {
        assert!(
            inner.data[..0x800].iter().all(|&b| b == 0xFF),
            "bad block untouched"
        );
        assert!(
            inner.data[0x800..0x1000].iter().any(|&b| b != 0xFF),
            "copy 0 in block 1"
        );
    }
    inner
}

/// Returns (old_seen, new_seen) over every cut point.
fn sweep(kind: FlashKind, previous_saves: u32) -> (usize, usize) {
    let old = env_with(previous_saves - 1);
    let new = env_with(previous_saves);
    let (mut old_seen, mut new_seen) = (0, 0);
    for k in 0.. {
        let c = chip(fresh(kind, previous_saves), Some(k));
        let res = store_on(&c, true).save(&new);
        let cut = c.0.borrow().is_cut();
        // reboot: same cells, no more cuts; both selection rules must agree
        let after = c.0.borrow().inner.clone();
        let mut seen = Vec::new();
        for rule in [SelectRule::UBoot, SelectRule::LibUbootEnv] {
            let rebooted = chip(after.clone(), None);
            let loaded = store_on(&rebooted, true).with_rule(rule).load();
            let env = loaded
                .unwrap_or_else(|e| panic!("{kind:?} cut at op {k}: no environment: {e}"))
                .env;
            assert!(
                env == old || env == new,
                "{kind:?} cut at op {k}: mixed environment"
            );
            seen.push(env == new);
        }
        assert_eq!(
            seen[0], seen[1],
            "{kind:?} cut at {k}: U-Boot and libubootenv disagree"
        );
        if seen[0] {
            new_seen += 1;
        } else {
            old_seen += 1;
        }
        if !cut {
            res.unwrap();
            assert!(seen[0], "completed save must be current");
            break;
        }
        assert!(res.is_err(), "a cut save must report an error");
    }
    (old_seen, new_seen)
}

#[test]
fn nor_boolean_flags_survive_every_cut() {
    for saves in 1..=3 {
        let (old, new) = sweep(FlashKind::Nor, saves);
        // erase + write of the new copy keep the old one current; the old copy's flag
        // program (the last op) switches.
        assert!(old >= 2 && new >= 1, "saves={saves}: old {old} new {new}");
    }
    assert_eq!(
        store_on(&chip(fresh(FlashKind::Nor, 1), None), true).flag_scheme(),
        FlagScheme::Boolean
    );
}

#[test]
fn nand_incremental_flags_with_bad_block_survive_every_cut() {
    for saves in 1..=4 {
        let (old, new) = sweep(FlashKind::Nand, saves);
        assert!(old >= 2 && new >= 1, "saves={saves}: old {old} new {new}");
    }
}

/// A file copy whose write is torn (a prefix lands) at operation `k`.
struct TornFile {
    inner: FileCopy,
    ops: Rc<RefCell<(usize, usize)>>, // (done, budget)
}

impl CopyDevice for TornFile {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn read_copy(&mut self, buf: &mut [u8]) -> liminix_bootenv::Result<()> {
        self.inner.read_copy(buf)
    }
    fn write_copy(&mut self, data: &[u8]) -> liminix_bootenv::Result<()> {
        let mut o = self.ops.borrow_mut();
        o.0 += 1;
        if o.0 > o.1 {
            let mut torn = Vec::new();
            let mut cur = vec![0u8; data.len()];
            self.inner.read_copy(&mut cur)?;
            torn.extend_from_slice(&data[..data.len() / 3]);
            torn.extend_from_slice(&cur[data.len() / 3..]);
            self.inner.write_copy(&torn)?;
            return Err(EnvError::io("torn", std::io::Error::other("power lost")));
        }
        self.inner.write_copy(data)
    }
    fn flag_scheme(&self) -> FlagScheme {
        self.inner.flag_scheme()
    }
    fn mark_obsolete(&mut self) -> liminix_bootenv::Result<()> {
        self.inner.mark_obsolete()
    }
}

#[test]
fn file_redundant_survives_torn_writes_and_single_copy_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.img");
    for redundant in [true, false] {
        let n = if redundant { 2 } else { 1 };
        let layout = Layout::new(ENV, redundant, Endian::Little).unwrap();
        let mk = |budget: usize| {
            let ops = Rc::new(RefCell::new((0, budget)));
            let copies: Vec<Box<dyn CopyDevice>> = (0..n)
                .map(|i| {
                    Box::new(TornFile {
                        inner: FileCopy::new(&path, (i * ENV) as i64),
                        ops: ops.clone(),
                    }) as Box<dyn CopyDevice>
                })
                .collect();
            EnvStore::new(layout, copies).unwrap()
        };
        let mut lost = 0;
        for saves in 1..=3u32 {
            std::fs::write(&path, vec![0xFFu8; n * ENV]).unwrap();
            for g in 0..saves {
                mk(usize::MAX).save(&env_with(g)).unwrap();
            }
            assert!(mk(0).save(&env_with(saves)).is_err());
            match mk(usize::MAX).load() {
                Ok(l) => assert_eq!(l.env, env_with(saves - 1), "redundant={redundant}"),
                Err(EnvError::BadCrc { .. }) => lost += 1,
                Err(e) => panic!("{e}"),
            }
        }
        if redundant {
            assert_eq!(lost, 0);
        } else {
            // Single copy: a torn rewrite in place destroys the only copy; U-Boot falls
            // back to its built-in default environment. Documented, not fixable.
            assert_eq!(lost, 3);
        }
    }
}

#[test]
fn single_copy_on_nor_is_lost_when_cut_between_erase_and_write() {
    let ram = RamFlash::new(FlashKind::Nor, 0x4000, 0x800, 1);
    let c = chip(ram, None);
    store_on(&c, false).save(&env_with(0)).unwrap();
    let base = c.0.borrow().inner.clone();
    let c = chip(base, Some(1)); // erase done, write torn
    assert!(store_on(&c, false).save(&env_with(1)).is_err());
    let after = chip(c.0.borrow().inner.clone(), None);
    assert!(matches!(
        store_on(&after, false).load(),
        Err(EnvError::BadCrc { copies: 1 })
    ));
}

/// A chip whose block 0 returns read errors (an uncorrectable ECC error after a torn
/// program) until it is erased.
struct EccFail {
    ram: RamFlash,
    broken: bool,
}

impl Flash for EccFail {
    fn info(&self) -> FlashInfo {
        self.ram.info()
    }
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if self.broken && off < self.ram.info().erase_size {
            return Err(std::io::Error::other("EBADMSG"));
        }
        self.ram.read_at(off, buf)
    }
    fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        self.ram.write_at(off, data)
    }
    fn erase(&mut self, off: u64, len: u64) -> std::io::Result<()> {
        if off == 0 {
            self.broken = false;
        }
        self.ram.erase(off, len)
    }
    fn is_bad(&mut self, off: u64) -> std::io::Result<bool> {
        self.ram.is_bad(off)
    }
}

#[test]
fn unreadable_copy_counts_as_invalid_and_is_rewritten() {
    let shared = Rc::new(RefCell::new(EccFail {
        ram: RamFlash::new(FlashKind::Nand, 0x4000, 0x800, 0x200),
        broken: false,
    }));
    #[derive(Clone)]
    struct H(Rc<RefCell<EccFail>>);
    impl Flash for H {
        fn info(&self) -> FlashInfo {
            self.0.borrow().info()
        }
        fn read_at(&mut self, o: u64, b: &mut [u8]) -> std::io::Result<()> {
            self.0.borrow_mut().read_at(o, b)
        }
        fn write_at(&mut self, o: u64, d: &[u8]) -> std::io::Result<()> {
            self.0.borrow_mut().write_at(o, d)
        }
        fn erase(&mut self, o: u64, l: u64) -> std::io::Result<()> {
            self.0.borrow_mut().erase(o, l)
        }
        fn is_bad(&mut self, o: u64) -> std::io::Result<bool> {
            self.0.borrow_mut().is_bad(o)
        }
    }
    let store = || {
        let copies: Vec<Box<dyn CopyDevice>> = vec![
            Box::new(MtdCopy::new(H(shared.clone()), "nand", 0, 0x800, 1)),
            Box::new(MtdCopy::new(H(shared.clone()), "nand", 0x1000, 0x800, 1)),
        ];
        EnvStore::new(Layout::new(0x400, true, Endian::Little).unwrap(), copies).unwrap()
    };
    store().save(&env_with(1)).unwrap(); // copy 1
    store().save(&env_with(2)).unwrap(); // copy 0
    shared.borrow_mut().broken = true;
    let snap = store().snapshot().unwrap();
    assert_eq!(snap.read_errors.len(), 1);
    assert_eq!(store().load().unwrap().env, env_with(1));
    // the next save goes to the unreadable copy (half a block: its rest is unreadable too)
    assert_eq!(store().save(&env_with(3)).unwrap().copy, 0);
    assert_eq!(store().load().unwrap().env, env_with(3));
    // both unreadable: an error, not a silent default
    shared.borrow_mut().broken = true;
    let copies: Vec<Box<dyn CopyDevice>> = vec![Box::new(MtdCopy::new(
        H(shared.clone()),
        "nand",
        0,
        0x800,
        1,
    ))];
    let mut single =
        EnvStore::new(Layout::new(0x400, false, Endian::Little).unwrap(), copies).unwrap();
    assert!(matches!(single.load(), Err(EnvError::Io { .. })));
}
