//! An A/B board through `apply`: the packer's bundle for zyxel-nwa50ax is checked and staged by
//! `apply`, then handed to the A/B strategy, on a device root made of files (slot partitions and
//! the bootconfig partition are files, described by /etc/liminix/ab.json; the booted slot comes
//! from a fake /proc/device-tree).
//!
//! Image patches: the real packer (`--delta-base`) makes the kernel and root filesystem patches
//! against the images the running slot holds, and `apply` (with its dry run and `image-plan`)
//! decodes them against that slot and writes the other one. A running slot that changed since
//! is `base_mismatch` (exit 10) with neither slot nor the boot state touched.

use std::io::Cursor;
use std::path::Path;

use liminix_agent::ab::{FlowConfig, HealthConfig, Slot, SlotLayout, SlotTargets, Target};
use liminix_agent::apply::{apply_with, dry_run, ApplyError, ApplyOptions, Devices};
use liminix_agent::error::AgentError;
use liminix_agent::root::DeviceRoot;
use liminix_boards::Partition;
use liminix_build_tools::images::ImageInput;
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::stream::{ChunkReader, Encoding, EntryHeader, Header};
use liminix_bundle::SecretKey;
use liminix_flash::{Flash, NoProgress, Ubi};
use liminix_testdata::{code_like, tenth_changed};

const PART: usize = 512 * 1024;

/// A/B boards never reach the raw/UBI devices of the other strategies.
struct NoDevices;

impl Devices for NoDevices {
    fn raw(&mut self, p: &Partition) -> Result<(String, &mut dyn Flash), ApplyError> {
        panic!("raw device {} opened for an A/B board", p.name)
    }
    fn ubi(&mut self, p: &Partition) -> Result<(String, &mut dyn Ubi), ApplyError> {
        panic!("UBI device {} opened for an A/B board", p.name)
    }
}

fn partition(content: &[u8]) -> Vec<u8> {
    let mut p = vec![0xFFu8; PART];
    p[..content.len()].copy_from_slice(content);
    p
}

/// Slot A runs `kernel` and `rootfs` (image 0 valid and active); slot B is erased.
fn device(dir: &Path, key: &SecretKey, kernel: &[u8], rootfs: &[u8]) -> DeviceRoot {
    let root = DeviceRoot::new(dir);
    for p in [
        "/dev",
        "/etc/liminix/trusted-keys",
        "/proc/device-tree/chosen",
        "/persist",
    ] {
        std::fs::create_dir_all(root.join(p)).unwrap();
    }
    std::fs::write(root.join("/dev/ka"), partition(kernel)).unwrap();
    std::fs::write(root.join("/dev/ra"), partition(rootfs)).unwrap();
    for p in ["/dev/kb", "/dev/rb"] {
        std::fs::write(root.join(p), vec![0xFFu8; PART]).unwrap();
    }
    let mut bc = vec![0xFFu8; 0x20000];
    bc[..2].copy_from_slice(&[0x08, 0x00]);
    std::fs::write(root.join("/dev/bootconfig"), bc).unwrap();
    std::fs::write(
        root.join("/proc/device-tree/chosen/bootargs"),
        "console=ttyS0 bootImage=0",
    )
    .unwrap();
    let slot = |k: &str, r: &str| SlotTargets {
        kernel: Target::Block { path: k.into() },
        kernel_max: PART as u64,
        rootfs: Some(Target::Block { path: r.into() }),
        rootfs_max: PART as u64,
    };
    let ab = SlotLayout {
        board: "zyxel-nwa50ax".into(),
        slots: [slot("/dev/ka", "/dev/ra"), slot("/dev/kb", "/dev/rb")],
        flow: FlowConfig::Zyxel {
            device: "/dev/bootconfig".into(),
            offset: 0,
        },
        health: HealthConfig::default(),
    };
    let layout = serde_json::to_vec(&ab).unwrap();
    std::fs::write(root.join("/etc/liminix/ab.json"), layout).unwrap();
    std::fs::write(root.board_name(), "zyxel-nwa50ax\n").unwrap();
    std::fs::write(root.join("/proc/meminfo"), "MemAvailable: 100000 kB\n").unwrap();
    std::fs::create_dir_all(root.run_dir()).unwrap();
    let public = key.public().to_file_text();
    std::fs::write(root.join("/etc/liminix/trusted-keys/k.pub"), public).unwrap();
    root
}

/// An image's name, its bytes and the base it is patched against, if any.
type Image<'a> = (&'a str, &'a [u8], Option<&'a [u8]>);

/// Packs each image, as a patch against its base when it has one (as `liminix-pack bundle
/// --delta-base` does).
fn pack(dir: &Path, key: &SecretKey, images: &[Image]) -> Vec<u8> {
    let inputs: Vec<ImageInput> = images
        .iter()
        .map(|(name, data, base)| {
            let file = dir.join(name);
            std::fs::write(&file, data).unwrap();
            let base = base.map(|b| {
                let path = dir.join(format!("{name}.base"));
                std::fs::write(&path, b).unwrap();
                path
            });
            ImageInput {
                name: (*name).into(),
                file,
                base,
            }
        })
        .collect();
    let board = liminix_boards::builtin("zyxel-nwa50ax").unwrap();
    let opts = PackOptions {
        store_root: Path::new("/nonexistent"),
        toplevel: None,
        board: "zyxel-nwa50ax",
        epoch: 1,
        build_time: 1,
        level: 19,
        images: &inputs,
        board_def: Some(&board),
        raw_images: false,
    };
    let out = dir.join("b.bundle");
    write_bundle(&opts, key, &out, &|_, _| {}).unwrap();
    std::fs::read(out).unwrap()
}

/// The encoding and payload length of every entry.
fn entries(bytes: &[u8]) -> Vec<(Encoding, u64)> {
    let mut r = Cursor::new(bytes);
    let h = Header::read(&mut r).unwrap();
    let mut out = Vec::new();
    while let Some(e) = EntryHeader::read(&mut r, &h.manifest).unwrap() {
        let len = ChunkReader::new(&mut r).drain().unwrap();
        out.push((e.encoding, len));
    }
    out
}

fn apply(
    root: &DeviceRoot,
    bundle: &[u8],
) -> Result<liminix_agent::apply::ApplyReport, AgentError> {
    let opts = ApplyOptions {
        staging: Some(root.join("/run/liminix/staging")),
        ..ApplyOptions::default()
    };
    let mut input = Cursor::new(bundle);
    apply_with(root, &mut input, &opts, &mut NoDevices, &mut NoProgress)
}

fn plan(root: &DeviceRoot, bundle: &[u8]) -> Result<(), AgentError> {
    let n = bundle.len() as u64;
    liminix_agent::image_plan::plan(root, &mut Cursor::new(bundle), n).map(|_| ())
}

struct Case {
    _dirs: [tempfile::TempDir; 2],
    root: DeviceRoot,
    bundle: Vec<u8>,
    new: [Vec<u8>; 2],
}

/// Slot A runs an old kernel and root filesystem; the bundle patches a tenth of each.
fn case() -> Case {
    let (dev, build) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = SecretKey::generate();
    let (kernel, rootfs) = (code_like(1, 150_000), code_like(2, 300_000));
    let root = device(dev.path(), &key, &kernel, &rootfs);
    let new = [tenth_changed(&kernel, 100), tenth_changed(&rootfs, 100)];
    let bundle = pack(
        build.path(),
        &key,
        &[
            ("kernel", &new[0], Some(&kernel)),
            ("rootfs", &new[1], Some(&rootfs)),
        ],
    );
    Case {
        _dirs: [dev, build],
        root,
        bundle,
        new,
    }
}

#[test]
fn patches_against_the_running_slot_install_the_other_slot() {
    let c = case();
    let sent = entries(&c.bundle);
    assert_eq!(sent.len(), 2);
    for ((enc, len), new) in sent.iter().zip(&c.new) {
        assert_eq!(*enc, Encoding::ImagePatch, "{enc:?}");
        assert!(*len < new.len() as u64 / 4, "{len} of {}", new.len());
    }
    let read = |p: &str| std::fs::read(c.root.join(p)).unwrap();
    let (ka, ra) = (read("/dev/ka"), read("/dev/ra"));
    let report = dry_run(&c.root, &mut Cursor::new(&c.bundle), &mut NoDevices).unwrap();
    assert!(report.would_change);
    plan(&c.root, &c.bundle).unwrap();
    let r = apply(&c.root, &c.bundle).unwrap();
    let ab = r.ab.unwrap();
    assert_eq!((ab.from, ab.to), (Slot::A, Slot::B));
    assert_eq!(read("/dev/kb"), partition(&c.new[0]));
    assert_eq!(read("/dev/rb"), partition(&c.new[1]));
    assert_eq!(
        (read("/dev/ka"), read("/dev/ra")),
        (ka, ra),
        "slot a as it was"
    );
    assert_eq!((read("/dev/bootconfig")[0] >> 6) & 3, 1, "image 1 armed");
}

#[test]
fn a_running_slot_changed_since_is_base_mismatch_and_nothing_is_written() {
    let c = case();
    let mut ra = std::fs::read(c.root.join("/dev/ra")).unwrap();
    ra[299_999] ^= 0x40;
    std::fs::write(c.root.join("/dev/ra"), &ra).unwrap();
    let files = [
        "/dev/ka",
        "/dev/ra",
        "/dev/kb",
        "/dev/rb",
        "/dev/bootconfig",
    ];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|p| std::fs::read(c.root.join(p)).unwrap())
        .collect();
    let mismatch = |e: AgentError| {
        assert_eq!(e.exit_code(), 10, "{e}");
        assert!(e.to_string().contains("running slot a"), "{e}");
    };
    mismatch(dry_run(&c.root, &mut Cursor::new(&c.bundle), &mut NoDevices).unwrap_err());
    mismatch(plan(&c.root, &c.bundle).unwrap_err());
    mismatch(apply(&c.root, &c.bundle).unwrap_err());
    for (p, b) in files.iter().zip(&before) {
        assert!(&std::fs::read(c.root.join(p)).unwrap() == b, "{p} changed");
    }
    let staged = c.root.join("/run/liminix/staging");
    let left = std::fs::read_dir(&staged).map_or(0, |d| d.count());
    assert_eq!(left, 0, "nothing staged is left");
}

#[test]
fn zyxel_bundle_goes_to_the_other_slot_and_is_armed_once() {
    let dev = tempfile::tempdir().unwrap();
    let build = tempfile::tempdir().unwrap();
    let key = SecretKey::generate();
    let root = device(dev.path(), &key, &[], &[]);
    let kernel: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let rootfs: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let bundle = pack(
        build.path(),
        &key,
        &[("kernel", &kernel, None), ("rootfs", &rootfs, None)],
    );
    let opts = ApplyOptions {
        staging: Some(root.join("/run/liminix/staging")),
        ..ApplyOptions::default()
    };
    let r = apply_with(
        &root,
        &mut Cursor::new(&bundle),
        &opts,
        &mut NoDevices,
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(r.strategy, "ab-zyxel");
    let ab = r.ab.unwrap();
    assert_eq!((ab.from, ab.to), (Slot::A, Slot::B));
    let kb = std::fs::read(root.join("/dev/kb")).unwrap();
    let rb = std::fs::read(root.join("/dev/rb")).unwrap();
    assert_eq!(&kb[..kernel.len()], &kernel[..]);
    assert_eq!(&rb[..rootfs.len()], &rootfs[..]);
    assert_eq!(
        std::fs::read(root.join("/dev/ka")).unwrap(),
        vec![0xFF; PART]
    );
    let bc = std::fs::read(root.join("/dev/bootconfig")).unwrap();
    assert_eq!(
        (bc[0] >> 6) & 3,
        1,
        "image 1 is NEW: tried once by the vendor U-Boot"
    );
    assert_eq!((bc[0] >> 2) & 3, 2, "image 0 stays VALID");
    let left = std::fs::read_dir(root.join("/run/liminix/staging"))
        .unwrap()
        .count();
    assert_eq!(left, 0);

    // A bundle without a kernel is refused by the strategy before it writes.
    let before = std::fs::read(root.join("/dev/kb")).unwrap();
    std::fs::write(
        root.join("/proc/device-tree/chosen/bootargs"),
        "bootImage=0",
    )
    .unwrap();
    let only_rootfs = pack(build.path(), &key, &[("rootfs", &rootfs[..1000], None)]);
    let e = apply_with(
        &root,
        &mut Cursor::new(&only_rootfs),
        &opts,
        &mut NoDevices,
        &mut NoProgress,
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), liminix_agent::error::exit::REFUSED, "{e}");
    assert_eq!(std::fs::read(root.join("/dev/kb")).unwrap(), before);
}
