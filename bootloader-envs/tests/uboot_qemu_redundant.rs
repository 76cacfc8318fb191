//! Real U-Boot with a redundant environment: Debian's u-boot 2023.01 source built for
//! qemu_arm with CONFIG_SYS_REDUNDAND_ENVIRONMENT by `uboot/build-qemu-arm.sh redundant` (copy 0
//! at offset 0 of the second pflash bank, copy 1 at 0x40000, 256 KiB each).
//!
//! We write through the bank as NOR flash (`MtdCopy`, boolean flags: what `/dev/mtdN`
//! gives the agent on a board with this U-Boot) and as a plain file (`FileCopy`,
//! incremental flags, libubootenv's choice for files), and check that U-Boot boots what
//! we saved, falls back to the older copy when the newer one is torn, rejects two bad
//! copies, and that we read what U-Boot's own `saveenv` wrote.

mod common;

use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::env;
use liminix_bootenv::storage::{CopyDevice, FileCopy, MtdCopy};
use liminix_bootenv::{Endian, Env, EnvError, EnvStore, Layout};
use liminix_flash::{Flash, FlashError, Geometry, SimFlash};
use liminix_vm::arm::assets::BANK;
use liminix_vm::arm::{PflashBed as Bed, ENV_SIZE};

/// A fresh bed running `uboot`; a missing QEMU fails the test.
fn bed_with(uboot: &Path) -> Bed {
    Bed::new(uboot).unwrap_or_else(|e| panic!("{e}"))
}

/// Builds (once per run, cached across runs) the redundant U-Boot.
fn uboot() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build)
}

fn build() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir.parent().unwrap().join("target"));
    let out = target.join("u-boot-redund");
    let script = crate_dir.join("uboot/build-qemu-arm.sh");
    let o = Command::new(&script)
        .arg("redundant")
        .arg(&out)
        .output()
        .expect("run build-qemu-arm.sh");
    assert!(
        o.status.success(),
        "{} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out.join("u-boot.bin")
}

/// The environment bank file as NOR flash: programming only clears bits, erase sets
/// 0xFF, as the CFI pflash behind it (and a Linux `/dev/mtdN` on it) does.
struct NorBank(PathBuf);

impl NorBank {
    fn file(&self) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.0)
    }
}

fn bank_err(op: &'static str, off: u64) -> impl FnOnce(io::Error) -> FlashError {
    move |source| FlashError::Io { op, off, source }
}

impl Flash for NorBank {
    fn geometry(&self) -> Geometry {
        Geometry {
            size: BANK,
            erase_size: ENV_SIZE as u32,
            write_size: 1,
            is_nand: false,
        }
    }
    fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.file()
            .and_then(|f| f.read_exact_at(buf, off))
            .map_err(bank_err("read", off))
    }
    fn program(&mut self, off: u64, data: &[u8]) -> Result<(), FlashError> {
        let f = self.file().map_err(bank_err("program", off))?;
        let mut cells = vec![0u8; data.len()];
        f.read_exact_at(&mut cells, off)
            .map_err(bank_err("program", off))?;
        cells.iter_mut().zip(data).for_each(|(c, d)| *c &= d);
        f.write_all_at(&cells, off)
            .map_err(bank_err("program", off))
    }
    fn erase_block(&mut self, off: u64) -> Result<(), FlashError> {
        self.file()
            .and_then(|f| f.write_all_at(&vec![0xFF; ENV_SIZE], off))
            .map_err(bank_err("erase", off))
    }
    fn is_bad(&mut self, _off: u64) -> Result<bool, FlashError> {
        Ok(false)
    }
    fn mark_bad(&mut self, off: u64) -> Result<(), FlashError> {
        Err(FlashError::EraseFailed { off })
    }
    fn corrected_bitflips(&mut self) -> Result<u64, FlashError> {
        Ok(0)
    }
    fn sync(&mut self) -> Result<(), FlashError> {
        self.file()
            .and_then(|f| f.sync_data())
            .map_err(bank_err("sync", 0))
    }
}

/// The two environment blocks of the bank on the flash simulator, so a power cut tears
/// an erase or program exactly as the simulator models it; every block an operation
/// touched (torn or not) is copied back into the bank file for U-Boot to read.
struct CutBank {
    sim: SimFlash,
    bank: NorBank,
}

impl CutBank {
    /// The bank's cells; power fails at erase/program number `cut` (0-based).
    fn new(bank: NorBank, cut: Option<usize>) -> Self {
        let mut sim = SimFlash::nor(OFFSETS.len() as u64, ENV_SIZE as u32);
        let mut cells = vec![0u8; OFFSETS.len() * ENV_SIZE];
        bank.file().unwrap().read_exact_at(&mut cells, 0).unwrap();
        sim.load(0, &cells);
        if let Some(k) = cut {
            sim.cut_after(k as u64);
        }
        CutBank { sim, bank }
    }

    fn mirror(&mut self, off: u64, r: Result<(), FlashError>) -> Result<(), FlashError> {
        let start = off as usize / ENV_SIZE * ENV_SIZE;
        let block = &self.sim.contents()[start..start + ENV_SIZE];
        self.bank
            .file()
            .and_then(|f| f.write_all_at(block, start as u64))
            .map_err(bank_err("mirror", off))?;
        r
    }
}

impl Flash for CutBank {
    fn geometry(&self) -> Geometry {
        self.sim.geometry()
    }
    fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.sim.read(off, buf)
    }
    fn program(&mut self, off: u64, data: &[u8]) -> Result<(), FlashError> {
        let r = self.sim.program(off, data);
        self.mirror(off, r)
    }
    fn erase_block(&mut self, off: u64) -> Result<(), FlashError> {
        let r = self.sim.erase_block(off);
        self.mirror(off, r)
    }
    fn is_bad(&mut self, off: u64) -> Result<bool, FlashError> {
        self.sim.is_bad(off)
    }
    fn mark_bad(&mut self, off: u64) -> Result<(), FlashError> {
        self.sim.mark_bad(off)
    }
    fn corrected_bitflips(&mut self) -> Result<u64, FlashError> {
        self.sim.corrected_bitflips()
    }
    fn sync(&mut self) -> Result<(), FlashError> {
        self.sim.sync()
    }
}

/// How our writes reach the bank.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// MTD NOR: boolean flags (new copy 1, old copy programmed to 0).
    Nor,
    /// A plain file: incremental flags.
    File,
}

const OFFSETS: [u64; 2] = [0, ENV_SIZE as u64];

fn layout() -> Layout {
    Layout::new(ENV_SIZE, true, Endian::Little).unwrap()
}

fn store(bed: &Bed, via: Via) -> EnvStore {
    let copies: Vec<Box<dyn CopyDevice>> = match via {
        Via::Nor => OFFSETS
            .iter()
            .map(|&o| nor_copy(NorBank(bed.env.clone()), o))
            .collect(),
        Via::File => OFFSETS
            .iter()
            .map(|&o| Box::new(FileCopy::new(&bed.env, o as i64)) as Box<dyn CopyDevice>)
            .collect(),
    };
    EnvStore::new(layout(), copies).unwrap()
}

fn nor_copy<F: Flash + 'static>(flash: F, offset: u64) -> Box<dyn CopyDevice> {
    Box::new(MtdCopy::new(flash, "pflash1", offset, 0, 0))
}

/// A NOR store whose power fails at erase/write number `cut[i]` (0-based) on copy `i`.
fn store_cut(bed: &Bed, cut: [Option<usize>; 2]) -> EnvStore {
    let copies = OFFSETS
        .iter()
        .zip(cut)
        .map(|(&o, c)| nor_copy(CutBank::new(NorBank(bed.env.clone()), c), o))
        .collect();
    EnvStore::new(layout(), copies).unwrap()
}

fn generation(gen: u32) -> Env {
    let mut e = env("bootdelay=0\nbootcmd=echo MARK-${gen}-END; poweroff\n");
    e.set(b"gen", gen.to_string().as_bytes()).unwrap();
    // long enough that a write torn in the middle cuts through the variables
    e.set(b"filler", "f".repeat(0x30000).as_bytes()).unwrap();
    e
}

/// Boots and asserts that U-Boot loaded the flash environment without complaint and ran
/// `gen`'s bootcmd.
fn boots_generation(bed: &Bed, gen: u32) {
    let con = bed.boot("-END");
    show(&con);
    assert!(
        con.contains("Loading Environment from Flash... OK"),
        "{con}"
    );
    assert!(!con.contains("Warning"), "{con}");
    assert!(con.contains(&format!("MARK-{gen}-END")), "{con}");
}

/// The console lines that matter, for `--nocapture` runs.
fn show(con: &str) {
    let keep = [
        "Environment",
        "Warning",
        "MARK-",
        "Flash",
        "bad CRC",
        "SAVED",
    ];
    for line in con.lines().filter(|l| keep.iter().any(|k| l.contains(k))) {
        eprintln!("  u-boot| {}", line.trim_end());
    }
}

/// Our loader's answer: (copy, gen).
fn our_choice(bed: &Bed, via: Via) -> (usize, String) {
    let l = store(bed, via).load().unwrap();
    (l.copy, l.env.get_str("gen").unwrap_or_default())
}

/// Flips bits in the variables of `copy`, as stray corruption after a save would.
fn corrupt(bed: &Bed, copy: usize) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&bed.env)
        .unwrap();
    let at = OFFSETS[copy] + 0x1000;
    let mut buf = [0u8; 32];
    f.read_exact_at(&mut buf, at).unwrap();
    buf.iter_mut().for_each(|b| *b ^= 0x5A);
    f.write_all_at(&buf, at).unwrap();
}

#[test]
fn uboot_boots_each_of_our_saves_through_mtd_nor() {
    let ub = uboot();
    let bed = bed_with(ub);
    // from an erased bank: copy 1, then 0, 1, 0 (flags 1 / obsolete 0)
    for gen in 1..=4 {
        let r = store(&bed, Via::Nor).save(&generation(gen)).unwrap();
        assert_eq!(r.copy, gen as usize % 2);
        boots_generation(&bed, gen);
        // U-Boot may reprogram flags while loading; we must still agree with it
        assert_eq!(our_choice(&bed, Via::Nor), (r.copy, gen.to_string()));
    }
}

#[test]
fn uboot_boots_our_first_and_second_file_saves() {
    let ub = uboot();
    let bed = bed_with(ub);
    // incremental flags from an erased bank: 0 in copy 1, then 1 in copy 0; U-Boot's
    // boolean rule reads (1, 0) as "copy 0 active, copy 1 obsolete"
    for (gen, copy, flags) in [(1, 1, 0), (2, 0, 1)] {
        let r = store(&bed, Via::File).save(&generation(gen)).unwrap();
        assert_eq!((r.copy, r.flags), (copy, Some(flags)));
        boots_generation(&bed, gen);
        assert_eq!(our_choice(&bed, Via::File), (copy, gen.to_string()));
    }
}

/// Incremental flags (what libubootenv and we write to a plain file) are not U-Boot's
/// CFI NOR rule: (1, 2) and (3, 2) match none of env/flash.c's cases, so it falls back to
/// copy 1 and marks copy 0 obsolete. A CFI NOR environment must be written through its
/// MTD device, which gives boolean flags (previous test).
#[test]
fn file_saves_beyond_the_second_break_on_uboots_cfi_nor_rule() {
    let ub = uboot();
    let bed = bed_with(ub);
    for gen in 1..=2 {
        store(&bed, Via::File).save(&generation(gen)).unwrap();
    }
    // (1, 2): copy 1 happens to be the newer one; U-Boot "recovers" by obsoleting copy 0
    store(&bed, Via::File).save(&generation(3)).unwrap();
    let con = bed.boot("-END");
    show(&con);
    assert!(con.contains("MARK-3-END"), "{con}");
    assert!(con.contains("Warning - some problems detected"), "{con}");
    let snap = store(&bed, Via::File).snapshot().unwrap();
    assert_eq!(snap.states[0].flags, Some(0));
    // (3, 2): copy 0 is newer, U-Boot boots copy 1 and obsoletes our save
    store(&bed, Via::File).save(&generation(4)).unwrap();
    assert_eq!(our_choice(&bed, Via::File), (0, "4".into()));
    let con = bed.boot("-END");
    show(&con);
    assert!(con.contains("MARK-3-END"), "{con}");
    assert_eq!(our_choice(&bed, Via::File), (1, "3".into()));
}

#[test]
fn uboot_and_we_fall_back_when_a_save_is_cut_mid_write() {
    let ub = uboot();
    let bed = bed_with(ub);
    for gen in 1..=2 {
        store(&bed, Via::Nor).save(&generation(gen)).unwrap();
    }
    // copy 1 is the target: its erase lands, its write is torn halfway
    let err = store_cut(&bed, [Some(0), Some(1)])
        .save(&generation(3))
        .unwrap_err();
    assert!(
        matches!(&err, EnvError::Flash { source, .. } if source.is_power_cut()),
        "{err}"
    );
    let snap = store(&bed, Via::Nor).snapshot().unwrap();
    // copy 1 was erased and half programmed; copy 0 (gen 2) is still flagged active
    assert!(!snap.states[1].crc_ok && snap.states[0].crc_ok);
    assert_eq!(snap.states[0].flags, Some(1));
    assert_eq!(our_choice(&bed, Via::Nor), (0, "2".into()));
    boots_generation(&bed, 2);
    // the next save goes over the torn copy and becomes current
    store(&bed, Via::Nor).save(&generation(4)).unwrap();
    boots_generation(&bed, 4);
    assert_eq!(our_choice(&bed, Via::Nor), (1, "4".into()));
}

/// Power fails after the new copy is complete but before the old one's flag is
/// programmed to 0: both say "active". U-Boot's env/flash.c then takes copy 0 (and
/// obsoletes copy 1); we must take the same copy whether it is the new or the old one.
#[test]
fn uboot_and_we_agree_when_power_fails_before_the_old_copy_is_obsoleted() {
    let ub = uboot();
    // (complete saves, cut copy) -> gen 2 in copy 0 wins: the new one, then the old one
    for (done, cut) in [(1, [None, Some(0)]), (2, [Some(0), None])] {
        let bed = bed_with(ub);
        for gen in 1..=done {
            store(&bed, Via::Nor).save(&generation(gen)).unwrap();
        }
        store_cut(&bed, cut)
            .save(&generation(done + 1))
            .unwrap_err();
        let snap = store(&bed, Via::Nor).snapshot().unwrap();
        let flags: Vec<_> = snap.states.iter().map(|s| (s.crc_ok, s.flags)).collect();
        assert_eq!(flags, [(true, Some(1)), (true, Some(1))]);
        assert_eq!(our_choice(&bed, Via::Nor), (0, "2".into()));
        let con = bed.boot("-END");
        show(&con);
        assert!(con.contains("Warning - some problems detected"), "{con}");
        assert!(con.contains("MARK-2-END"), "{con}");
        let snap = store(&bed, Via::Nor).snapshot().unwrap();
        assert_eq!(snap.states[1].flags, Some(0), "U-Boot obsoletes copy 1");
        assert_eq!(our_choice(&bed, Via::Nor), (0, "2".into()));
    }
}

#[test]
fn uboot_and_we_skip_a_newer_copy_corrupted_after_its_save() {
    let ub = uboot();
    for via in [Via::Nor, Via::File] {
        let bed = bed_with(ub);
        for gen in 1..=2 {
            store(&bed, via).save(&generation(gen)).unwrap();
        }
        let (newer, _) = our_choice(&bed, via);
        corrupt(&bed, newer);
        assert_eq!(our_choice(&bed, via), (1 - newer, "1".into()), "{via:?}");
        boots_generation(&bed, 1);
        assert_eq!(our_choice(&bed, via), (1 - newer, "1".into()), "{via:?}");
    }
}

#[test]
fn uboot_and_we_reject_two_bad_copies() {
    let ub = uboot();
    let bed = bed_with(ub);
    for gen in 1..=2 {
        store(&bed, Via::Nor).save(&generation(gen)).unwrap();
    }
    corrupt(&bed, 0);
    corrupt(&bed, 1);
    for via in [Via::Nor, Via::File] {
        let err = store(&bed, via).load().unwrap_err();
        assert!(matches!(err, EnvError::BadCrc { copies: 2 }), "{err}");
    }
    let con = bed.boot("using default environment");
    show(&con);
    assert!(con.contains("bad CRC, using default environment"), "{con}");
    assert!(!con.contains("MARK-"), "{con}");
}

#[test]
fn we_read_what_uboots_saveenv_wrote() {
    let ub = uboot();
    let bed = bed_with(ub);
    let mut e = env("bootdelay=0\nbootcmd=setenv x y; saveenv; echo SAVED; poweroff\n");
    e.set(b"gen", b"1").unwrap();
    assert_eq!(store(&bed, Via::Nor).save(&e).unwrap().copy, 1);
    // word-by-word CFI programming of 256 KiB takes U-Boot about 40 s under TCG
    let con = bed.boot_for("SAVED", Duration::from_secs(300));
    show(&con);
    assert!(
        con.contains("Loading Environment from Flash... OK"),
        "{con}"
    );
    assert!(con.contains("Saving Environment to Flash..."), "{con}");
    assert!(con.contains("Writing to Flash... done"), "{con}");
    assert!(con.contains("SAVED"), "{con}");

    // U-Boot wrote copy 0 with flag 1 and programmed copy 1's flag to 0
    let snap = store(&bed, Via::Nor).snapshot().unwrap();
    let flags: Vec<_> = snap.states.iter().map(|s| (s.crc_ok, s.flags)).collect();
    assert_eq!(flags, [(true, Some(1)), (true, Some(0))]);
    for via in [Via::Nor, Via::File] {
        let l = store(&bed, via).load().unwrap();
        assert_eq!(l.copy, 0, "{via:?}");
        assert_eq!(l.env.get_str("x").as_deref(), Some("y"), "{via:?}");
        assert_eq!(l.env.get_str("gen").as_deref(), Some("1"), "{via:?}");
    }
    same_fw_printenv_as_libubootenv(&bed);

    // and U-Boot boots our next save over its own
    store(&bed, Via::Nor).save(&generation(2)).unwrap();
    boots_generation(&bed, 2);
}

/// Our `fw_printenv` and libubootenv's, given a two-line fw_env.config for the bank.
fn same_fw_printenv_as_libubootenv(bed: &Bed) {
    common::need("/usr/bin/fw_printenv", "libubootenv-tool");
    let cfg = bed.dir().join("fw_env.config");
    let lines: String = OFFSETS
        .iter()
        .map(|o| format!("{} {o:#x} {ENV_SIZE:#x} {ENV_SIZE:#x}\n", bed.env.display()))
        .collect();
    std::fs::write(&cfg, lines).unwrap();
    let cfg = cfg.to_str().unwrap();
    for args in [vec!["-c", cfg], vec!["-c", cfg, "x", "gen", "bootcmd"]] {
        let real = common::real("fw_printenv", &args, bed.dir());
        let mine = common::mine("fw_printenv", &args, bed.dir());
        assert_eq!(real.2, 0, "{}", String::from_utf8_lossy(&real.1));
        assert_eq!(
            String::from_utf8_lossy(&mine.0),
            String::from_utf8_lossy(&real.0),
            "{args:?}"
        );
        assert_eq!(mine.1, real.1, "{args:?}");
        assert_eq!(mine.2, real.2, "{args:?}");
    }
    let real = common::real("fw_printenv", &["-c", cfg, "x"], bed.dir());
    assert_eq!(String::from_utf8_lossy(&real.0), "x=y\n");
}
