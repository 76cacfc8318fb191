//! An A/B board through `apply`: the packer's bundle for zyxel-nwa50ax is checked and staged by
//! `apply`, then handed to the A/B strategy, on a device root made of files (slot partitions and
//! the bootconfig partition are files, described by /etc/liminix/ab.json; the booted slot comes
//! from a fake /proc/device-tree).

use std::io::Cursor;
use std::path::Path;

use liminix_agent::ab::{FlowConfig, HealthConfig, Slot, SlotLayout, SlotTargets, Target};
use liminix_agent::apply::{apply_with, ApplyError, ApplyOptions, Devices};
use liminix_agent::root::DeviceRoot;
use liminix_boards::Partition;
use liminix_build_tools::images::ImageInput;
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::SecretKey;
use liminix_flash::{Flash, NoProgress, Ubi};

const PART: usize = 256 * 1024;

/// A/B boards never reach the raw/UBI devices.
struct NoDevices;

impl Devices for NoDevices {
    fn raw(&mut self, p: &Partition) -> Result<(String, &mut dyn Flash), ApplyError> {
        panic!("raw device {} opened for an A/B board", p.name)
    }
    fn ubi(&mut self, p: &Partition) -> Result<(String, &mut dyn Ubi), ApplyError> {
        panic!("UBI device {} opened for an A/B board", p.name)
    }
}

fn block(path: &str) -> Target {
    Target::Block { path: path.into() }
}

fn device(dir: &Path, key: &SecretKey) -> DeviceRoot {
    let root = DeviceRoot::new(dir);
    for p in [
        "/dev",
        "/etc/liminix/trusted-keys",
        "/proc/device-tree/chosen",
        "/persist",
    ] {
        std::fs::create_dir_all(root.join(p)).unwrap();
    }
    for p in ["/dev/ka", "/dev/ra", "/dev/kb", "/dev/rb"] {
        std::fs::write(root.join(p), vec![0xFFu8; PART]).unwrap();
    }
    // Image 0 valid, image 1 none, active 0; U-Boot booted image 0.
    let mut bc = vec![0xFFu8; 0x20000];
    bc[..2].copy_from_slice(&[0x08, 0x00]);
    std::fs::write(root.join("/dev/bootconfig"), bc).unwrap();
    std::fs::write(
        root.join("/proc/device-tree/chosen/bootargs"),
        "console=ttyS0 bootImage=0",
    )
    .unwrap();
    let slot = |k: &str, r: &str| SlotTargets {
        kernel: block(k),
        kernel_max: PART as u64,
        rootfs: Some(block(r)),
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
    std::fs::write(
        root.join("/etc/liminix/ab.json"),
        serde_json::to_vec(&ab).unwrap(),
    )
    .unwrap();
    std::fs::write(root.board_name(), "zyxel-nwa50ax\n").unwrap();
    std::fs::write(
        root.join("/etc/liminix/trusted-keys/k.pub"),
        key.public().to_file_text(),
    )
    .unwrap();
    root
}

fn pack(dir: &Path, key: &SecretKey, images: &[(&str, &[u8])]) -> Vec<u8> {
    let inputs: Vec<ImageInput> = images
        .iter()
        .map(|(name, data)| {
            let file = dir.join(name);
            std::fs::write(&file, data).unwrap();
            ImageInput {
                name: (*name).into(),
                file,
                base: None,
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
        level: 3,
        images: &inputs,
        board_def: Some(&board),
        raw_images: false,
    };
    let out = dir.join("b.bundle");
    write_bundle(&opts, key, &out, &|_, _| {}).unwrap();
    std::fs::read(out).unwrap()
}

#[test]
fn zyxel_bundle_goes_to_the_other_slot_and_is_armed_once() {
    let dev = tempfile::tempdir().unwrap();
    let build = tempfile::tempdir().unwrap();
    let key = SecretKey::generate();
    let root = device(dev.path(), &key);
    let kernel: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let rootfs: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let bundle = pack(
        build.path(),
        &key,
        &[("kernel", &kernel), ("rootfs", &rootfs)],
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
    let only_rootfs = pack(build.path(), &key, &[("rootfs", &rootfs[..1000])]);
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
