//! The packer's bundles applied by `liminix-agent apply`'s library to liminix-flash's simulators,
//! through the same `Devices` trait and transaction code the real device uses: raw NOR and UBI
//! boards, re-application, and every refusal checked to happen before the first flash write.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use liminix_agent::apply::{apply_with, dry_run, ApplyError, ApplyOptions, Devices, DryRunReport};
use liminix_agent::error::{exit, AgentError};
use liminix_agent::flashops::journal_dir::JournalLocation;
use liminix_agent::root::DeviceRoot;
use liminix_boards::Partition;
use liminix_build_tools::images::ImageInput;
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::SecretKey;
use liminix_flash::journal::JournalStore;
use liminix_flash::txn::RecoveryEnv;
use liminix_flash::ubi_update::read_named;
use liminix_flash::{
    FileImage, FileJournal, Flash, ImageSource, NoProgress, Outcome, Progress, SimFlash, SimUbi,
    TxError, TxRecord, Ubi, VolKind,
};

/// One simulated partition or UBI device per board partition name.
struct Sim {
    raw: Vec<(String, SimFlash)>,
    ubi: Vec<(String, SimUbi)>,
    /// Journal records recovery found, and what it made of them.
    recovered: Vec<(String, Result<Outcome, String>)>,
}

/// What recovery opens: the simulators, and staged images by the journal's source hint.
struct SimEnv<'a>(&'a mut Sim);

impl RecoveryEnv for SimEnv<'_> {
    fn source(&mut self, rec: &TxRecord) -> Option<Box<dyn ImageSource>> {
        let path = rec.source_hint.as_ref()?;
        Some(Box::new(FileImage::new(path).ok()?))
    }
    fn flash(&mut self, rec: &TxRecord) -> Result<&mut dyn Flash, TxError> {
        let name = rec.target.trim_start_matches("mtd:");
        let (_, f) = self.0.raw.iter_mut().find(|(n, _)| n == name).unwrap();
        Ok(f)
    }
    fn ubi(&mut self, _rec: &TxRecord) -> Result<&mut dyn Ubi, TxError> {
        Ok(&mut self.0.ubi[0].1)
    }
}

impl Devices for Sim {
    fn raw(&mut self, p: &Partition) -> Result<(String, &mut dyn Flash), ApplyError> {
        let (name, f) = self
            .raw
            .iter_mut()
            .find(|(n, _)| *n == p.name)
            .ok_or_else(|| ApplyError::Device {
                target: p.name.clone(),
                source: "not simulated".into(),
            })?;
        Ok((format!("mtd:{name}"), f))
    }
    fn ubi(&mut self, p: &Partition) -> Result<(String, &mut dyn Ubi), ApplyError> {
        let (_, u) = self
            .ubi
            .iter_mut()
            .find(|(n, _)| *n == p.name)
            .ok_or_else(|| ApplyError::Device {
                target: p.name.clone(),
                source: "not simulated".into(),
            })?;
        Ok(("ubi0".into(), u))
    }
    fn recover(
        &mut self,
        loc: &JournalLocation,
        _key: &str,
        progress: &mut dyn Progress,
    ) -> Result<(), AgentError> {
        let mut journal = FileJournal::open(&loc.dir).unwrap();
        let results = liminix_flash::recover(&mut journal, &mut SimEnv(self), progress).unwrap();
        for (rec, r) in results {
            self.recovered
                .push((rec.key(), r.map_err(|e| e.to_string())));
        }
        Ok(())
    }
}

struct Device {
    _dir: tempfile::TempDir,
    root: DeviceRoot,
    key: SecretKey,
}

fn device(board: &str) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let root = DeviceRoot::new(dir.path());
    let key = SecretKey::generate();
    std::fs::create_dir_all(root.join("/etc/liminix/trusted-keys")).unwrap();
    std::fs::create_dir_all(root.join("/persist")).unwrap();
    std::fs::write(root.board_name(), format!("{board}\n")).unwrap();
    std::fs::write(
        root.join("/etc/liminix/trusted-keys/build.pub"),
        key.public().to_file_text(),
    )
    .unwrap();
    Device {
        _dir: dir,
        root,
        key,
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 31) as u8) ^ seed).collect()
}

/// Packs `images` for `board` with the real packer and returns the bundle bytes.
fn bundle(d: &Device, board: &str, epoch: u64, images: &[(&str, &[u8])]) -> Vec<u8> {
    let work = d.root.join("/build");
    std::fs::create_dir_all(&work).unwrap();
    let inputs: Vec<ImageInput> = images
        .iter()
        .map(|(name, data)| {
            let file = work.join(name);
            std::fs::write(&file, data).unwrap();
            ImageInput {
                name: (*name).into(),
                file,
                base: None,
            }
        })
        .collect();
    let def = liminix_boards::builtin(board)
        .or_else(|_| liminix_boards::load_file(&d.root.join("/etc/liminix/board.toml")))
        .unwrap();
    let opts = PackOptions {
        store_root: Path::new("/nonexistent"),
        toplevel: None,
        board,
        epoch,
        build_time: 1,
        level: 3,
        images: &inputs,
        board_def: Some(&def),
        raw_images: false,
    };
    let out = work.join("out.bundle");
    write_bundle(&opts, &d.key, &out, &|_, _| {}).unwrap();
    std::fs::read(out).unwrap()
}

fn run(
    d: &Device,
    bytes: &[u8],
    sim: &mut Sim,
) -> Result<liminix_agent::apply::ApplyReport, AgentError> {
    let opts = ApplyOptions {
        staging: Some(d.root.join("/run/liminix/staging")),
        ..ApplyOptions::default()
    };
    apply_with(
        &d.root,
        &mut Cursor::new(bytes),
        &opts,
        sim,
        &mut NoProgress,
    )
}

fn nor_sim() -> Sim {
    let mut f = SimFlash::nor(64, 0x10000);
    f.load(0, &pattern(0x400000, 9));
    Sim {
        raw: vec![("firmware".into(), f)],
        ubi: vec![],
        recovered: vec![],
    }
}

fn journal_dir(d: &Device) -> PathBuf {
    d.root.join("/persist/.liminix/journal")
}

#[test]
fn raw_nor_firmware_is_written_incrementally_and_recorded() {
    let d = device("vm-nor");
    let mut sim = nor_sim();
    // The new image shares its first 2 blocks with what is on flash.
    let mut image = pattern(0x400000, 9)[..300_000].to_vec();
    image[200_000..].iter_mut().for_each(|b| *b ^= 0x55);
    let b = bundle(&d, "vm-nor", 4, &[("firmware", &image)]);
    let r = run(&d, &b, &mut sim).unwrap();
    assert_eq!(r.strategy, "raw");
    let i = &r.images[0];
    assert_eq!(
        (i.image.as_str(), i.target.as_str(), i.bytes),
        ("firmware", "mtd:firmware", 300_000)
    );
    assert_eq!(i.unchanged_blocks, 3, "{i:?}");
    assert_eq!(i.rewritten_blocks, 2, "{i:?}");
    assert_eq!(&sim.raw[0].1.contents()[..image.len()], &image[..]);
    assert!(FileJournal::open(journal_dir(&d))
        .unwrap()
        .load_all()
        .unwrap()
        .is_empty());
    let staged: Vec<_> = std::fs::read_dir(d.root.join("/run/liminix/staging"))
        .unwrap()
        .collect();
    assert!(staged.is_empty(), "staging files are removed");
    let epoch = std::fs::read_to_string(d.root.join("/persist/.liminix/image-epoch")).unwrap();
    assert_eq!(epoch.trim(), "4");
    // Applying it again changes nothing on flash.
    sim.raw[0].1.reset_stats();
    let again = run(&d, &b, &mut sim).unwrap();
    assert_eq!(again.images[0].rewritten_blocks, 0);
    assert_eq!(sim.raw[0].1.stats().erases, 0);
}

#[test]
fn ubi_volumes_are_swapped_and_the_old_ones_kept() {
    let d = device("vm-nand-ubi");
    let mut ubi = SimUbi::new(84, 129024);
    ubi.load_volume_kind("kernel", 8 * 129024, VolKind::Static, &pattern(50_000, 1));
    ubi.load_volume("rootfs", 20 * 129024, &pattern(100_000, 2));
    let mut sim = Sim {
        raw: vec![],
        ubi: vec![("ubi".into(), ubi)],
        recovered: vec![],
    };
    let kernel = pattern(70_000, 3);
    let rootfs = pattern(400_000, 4);
    let b = bundle(
        &d,
        "vm-nand-ubi",
        0,
        &[("kernel", &kernel), ("rootfs", &rootfs)],
    );
    let r = run(&d, &b, &mut sim).unwrap();
    let methods: Vec<_> = r
        .images
        .iter()
        .map(|i| (i.target.as_str(), i.method))
        .collect();
    assert_eq!(
        methods,
        [("ubi0:kernel", "ubi-swap"), ("ubi0:rootfs", "ubi-swap")]
    );
    let u = &mut sim.ubi[0].1;
    assert_eq!(read_named(u, "kernel", 70_000).unwrap().unwrap(), kernel);
    assert_eq!(read_named(u, "rootfs", 400_000).unwrap().unwrap(), rootfs);
    assert_eq!(
        read_named(u, "rootfs.old", 100_000).unwrap().unwrap(),
        pattern(100_000, 2)
    );
    assert_eq!(
        u.volume_by_name("kernel").unwrap().unwrap().kind,
        VolKind::Static
    );
}

/// Runs a bundle the device must refuse: no flash write, and the device's tree (journal, its
/// lock, staging) byte-identical afterwards.
fn refused(d: &Device, b: &[u8], sim: &mut Sim) -> AgentError {
    let before = sim.raw[0].1.contents().to_vec();
    let tree = liminix_tests::tree::snapshot(d.root.dir());
    let e = run(d, b, sim).unwrap_err();
    tree.assert_same(&liminix_tests::tree::snapshot(d.root.dir()), &e.to_string());
    let s = sim.raw[0].1.stats();
    assert_eq!(
        (s.erases, s.programs),
        (0, 0),
        "nothing may be written: {e}"
    );
    assert_eq!(sim.raw[0].1.contents(), &before[..]);
    e
}

#[test]
fn refusals_happen_before_the_first_write() {
    let d = device("vm-nor");
    let image = pattern(100_000, 7);
    let good = bundle(&d, "vm-nor", 3, &[("firmware", &image)]);

    // Signed by a key the device does not trust.
    let other = Device {
        key: SecretKey::generate(),
        ..device("vm-nor")
    };
    let untrusted = bundle(&other, "vm-nor", 3, &[("firmware", &image)]);
    let e = refused(&d, &untrusted, &mut nor_sim());
    assert_eq!(e.exit_code(), exit::VERIFY, "{e}");

    // Built for another board.
    std::fs::write(d.root.board_name(), "gl-ar750\n").unwrap();
    let e = refused(&d, &good, &mut nor_sim());
    assert!(matches!(e, AgentError::WrongBoard { .. }), "{e}");
    std::fs::write(d.root.board_name(), "vm-nor\n").unwrap();

    // Lower than the epoch the device has applied.
    std::fs::create_dir_all(d.root.join("/persist/.liminix")).unwrap();
    std::fs::write(d.root.join("/persist/.liminix/image-epoch"), "5\n").unwrap();
    let e = refused(&d, &good, &mut nor_sim());
    assert!(
        matches!(
            e,
            AgentError::Epoch {
                bundle: 3,
                installed: 5
            }
        ),
        "{e}"
    );
    std::fs::remove_file(d.root.join("/persist/.liminix/image-epoch")).unwrap();

    // One flipped payload byte near the end of the stream.
    let mut flipped = good.clone();
    let at = flipped.len() - 40;
    flipped[at] ^= 1;
    let e = refused(&d, &flipped, &mut nor_sim());
    assert_eq!(e.exit_code(), exit::VERIFY, "{e}");

    // The device's partition is not the one the board definition describes.
    let mut small = Sim {
        raw: vec![("firmware".into(), SimFlash::nor(32, 0x10000))],
        ubi: vec![],
        recovered: vec![],
    };
    let e = refused(&d, &good, &mut small);
    assert!(
        matches!(
            e,
            AgentError::Apply(ApplyError::Geometry { size: 0x200000, .. })
        ),
        "{e}"
    );

    // The intact bundle goes through.
    run(&d, &good, &mut nor_sim()).unwrap();
}

const NAND_RAW: &str = r#"
name = "sim-nand-raw"
strategy = "raw"
[[flash]]
name = "nand"
type = "nand"
size = 0x400000
erase_size = 0x20000
write_size = 2048
  [[flash.partition]]
  name = "kernel"
  offset = 0
  size = 0x400000
[[image]]
name = "kernel"
target = "mtd:kernel"
"#;

#[test]
fn bad_blocks_count_against_the_target_and_an_override_board_file_is_used() {
    let d = device("sim-nand-raw");
    std::fs::write(d.root.join("/etc/liminix/board.toml"), NAND_RAW).unwrap();
    // 30 of the 32 blocks: fits the partition, not its 29 good blocks.
    let image = pattern(30 * 0x20000, 5);
    let b = bundle(&d, "sim-nand-raw", 0, &[("kernel", &image)]);
    let nand = || {
        let mut f = SimFlash::nand(32, 0x20000, 2048);
        for bad in [3, 9, 20] {
            f.set_bad(bad);
        }
        Sim {
            raw: vec![("kernel".into(), f)],
            ubi: vec![],
            recovered: vec![],
        }
    };
    let e = refused(&d, &b, &mut nand());
    assert_eq!(e.exit_code(), exit::NO_SPACE, "{e}");
    // 29 blocks fit, sliding past the bad ones.
    let image = pattern(29 * 0x20000, 6);
    let b = bundle(&d, "sim-nand-raw", 0, &[("kernel", &image)]);
    let mut sim = nand();
    let r = run(&d, &b, &mut sim).unwrap();
    assert_eq!(r.images[0].bytes, image.len() as u64);
    let flash = &sim.raw[0].1;
    assert_eq!(&flash.contents()[..3 * 0x20000], &image[..3 * 0x20000]);
    assert_eq!(
        &flash.contents()[4 * 0x20000..5 * 0x20000],
        &image[3 * 0x20000..4 * 0x20000]
    );
}

#[test]
fn a_power_cut_mid_write_is_finished_by_the_next_apply() {
    let d = device("vm-nor");
    let mut sim = nor_sim();
    let image = pattern(600_000, 77);
    let b = bundle(&d, "vm-nor", 0, &[("firmware", &image)]);
    sim.raw[0].1.cut_after(40);
    let e = run(&d, &b, &mut sim).unwrap_err();
    match &e {
        AgentError::Apply(ApplyError::Tx { source, .. }) => assert!(source.is_power_cut(), "{e}"),
        other => panic!("expected a power cut, got {other}"),
    }
    assert_ne!(&sim.raw[0].1.contents()[..image.len()], &image[..]);
    // The record and the copy of the image it needs survive in the journal.
    let records = FileJournal::open(journal_dir(&d))
        .unwrap()
        .load_all()
        .unwrap();
    assert_eq!(records.len(), 1);
    sim.raw[0].1.reboot();
    let r = run(&d, &b, &mut sim).unwrap();
    assert_eq!(
        sim.recovered,
        [("mtd:firmware".to_owned(), Ok(Outcome::Completed))]
    );
    assert_eq!(r.images[0].rewritten_blocks, 0, "recovery already wrote it");
    assert_eq!(&sim.raw[0].1.contents()[..image.len()], &image[..]);
    assert!(FileJournal::open(journal_dir(&d))
        .unwrap()
        .load_all()
        .unwrap()
        .is_empty());
    let left = std::fs::read_dir(journal_dir(&d).join("staging"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "the journal's copy is gone once the record is");
}

#[test]
fn without_persist_the_running_image_epoch_is_the_floor_and_nothing_is_recorded() {
    let d = device("vm-nor");
    std::fs::remove_dir(d.root.join("/persist")).unwrap();
    std::fs::write(d.root.join("/etc/liminix/epoch"), "3\n").unwrap();
    let image = pattern(100_000, 8);
    let old = bundle(&d, "vm-nor", 2, &[("firmware", &image)]);
    let e = refused(&d, &old, &mut nor_sim());
    assert!(
        matches!(
            e,
            AgentError::Epoch {
                bundle: 2,
                installed: 3
            }
        ),
        "{e}"
    );
    let same = bundle(&d, "vm-nor", 3, &[("firmware", &image)]);
    run(&d, &same, &mut nor_sim()).unwrap();
    assert!(
        !d.root.join("/persist").exists(),
        "nothing is written outside the flash"
    );
}

fn dry(d: &Device, bytes: &[u8], sim: &mut Sim) -> Result<DryRunReport, AgentError> {
    dry_run(&d.root, &mut Cursor::new(bytes), sim)
}

/// `apply --dry-run` reads the manifest, runs apply's checks, and compares each target with its
/// image: no flash erase or program, nothing in the device's tree (journal, staging) made.
#[test]
fn a_dry_run_tells_which_targets_differ_and_writes_nothing() {
    let d = device("vm-nor");
    let mut sim = nor_sim();
    let image = pattern(300_000, 7);
    let b = bundle(&d, "vm-nor", 4, &[("firmware", &image)]);
    let tree = liminix_tests::tree::snapshot(d.root.dir());
    let r = dry(&d, &b, &mut sim).unwrap();
    tree.assert_same(&liminix_tests::tree::snapshot(d.root.dir()), "dry run");
    let s = sim.raw[0].1.stats();
    assert_eq!((s.erases, s.programs), (0, 0));
    let i = &r.images[0];
    assert_eq!(
        (r.dry_run, r.would_change, i.target.as_str(), i.current),
        (true, true, "mtd:firmware", "differs"),
        "{r:?}"
    );
    assert_eq!((i.bytes, i.in_use.as_deref()), (300_000, None));

    run(&d, &b, &mut sim).unwrap();
    let r = dry(&d, &b, &mut sim).unwrap();
    assert_eq!((r.would_change, r.images[0].current), (false, "same"));

    // The same checks as apply: an untrusted bundle is refused.
    let other = device("vm-nor");
    let untrusted = bundle(&other, "vm-nor", 4, &[("firmware", &image)]);
    let e = dry(&d, &untrusted, &mut sim).unwrap_err();
    assert_eq!(e.exit_code(), exit::VERIFY, "{e}");
}

#[test]
fn a_dry_run_reads_ubi_volumes() {
    let d = device("vm-nand-ubi");
    let mut ubi = SimUbi::new(84, 129024);
    let kernel = pattern(70_000, 3);
    ubi.load_volume_kind("kernel", 8 * 129024, VolKind::Static, &kernel);
    ubi.load_volume("rootfs", 20 * 129024, &pattern(100_000, 2));
    let mut sim = Sim {
        raw: vec![],
        ubi: vec![("ubi".into(), ubi)],
        recovered: vec![],
    };
    let b = bundle(
        &d,
        "vm-nand-ubi",
        0,
        &[("kernel", &kernel), ("rootfs", &pattern(400_000, 4))],
    );
    let r = dry(&d, &b, &mut sim).unwrap();
    let seen: Vec<_> = r
        .images
        .iter()
        .map(|i| (i.target.as_str(), i.current))
        .collect();
    assert_eq!(seen, [("ubi0:kernel", "same"), ("ubi0:rootfs", "differs")]);
    assert!(r.would_change);
    let u = &mut sim.ubi[0].1;
    assert!(
        u.volume_by_name("rootfs.old").unwrap().is_none(),
        "nothing swapped"
    );
}
