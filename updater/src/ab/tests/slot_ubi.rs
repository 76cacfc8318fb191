//! The inactive slot's UBI partition on a device root of files (fake sysfs, mount table
//! and device nodes): an attached partition is used unless its volume is mounted, one
//! holding foreign data is refused before an attach, attach failures say what to do,
//! and a rootfs larger than the board allows (or a layout whose inactive slot is the
//! running one's) is refused before any of this. The attach
//! itself runs on a real kernel in tests/tests/ab_zyxel_nand_vm.rs.

use liminix_boards::VolumeKind;
use liminix_flash::SimFlash;
use sha2::Digest;

use crate::ab::devices::{open_target, OpenTarget};
use crate::ab::slot_ubi::{attach_error, foreign_blocks};
use crate::ab::{
    AbError, AttachError, ConfigError, ImageRole, InstallOptions, LayoutError, RefusedError, Slot,
    StagedImage, Target,
};
use crate::root::DeviceRoot;
use crate::testutil::{fake_sysfs, fake_ubi_volume};

const PARTS: [&str; 5] = [
    "NAND simulator partition 0",
    "NAND simulator partition 1",
    "NAND simulator partition 2",
    "NAND simulator partition 3",
    "NAND simulator partition 4",
];

fn rootfs_on(partition: &str) -> Target {
    Target::UbiPartition {
        partition: partition.into(),
        volume: "rootfs".into(),
        volume_type: VolumeKind::Dynamic,
        size: None,
    }
}

/// PARTS in sysfs with UBI devices `ubi` (number, mtd), each holding volume `rootfs`,
/// and the mount table `mounts`.
fn device(ubi: &[(u32, u32)], mounts: &str) -> (tempfile::TempDir, DeviceRoot) {
    let dir = tempfile::tempdir().unwrap();
    let root = DeviceRoot::new(dir.path());
    fake_sysfs(&root, &PARTS, ubi);
    for (num, _) in ubi {
        fake_ubi_volume(&root, *num, 0, "rootfs");
        std::fs::write(root.join(&format!("/dev/ubi{num}")), b"").unwrap();
    }
    std::fs::create_dir_all(root.join("/proc")).unwrap();
    std::fs::write(root.join("/proc/mounts"), mounts).unwrap();
    (dir, root)
}

#[test]
fn an_attached_partition_is_used_unless_its_volume_is_mounted() {
    let (_d, root) = device(&[(0, 1), (1, 3)], "ubi0:rootfs / ubifs rw 0 0\n");
    let Ok(OpenTarget::Volume { ubi, name, make }) = open_target(&root, &rootfs_on(PARTS[3]))
    else {
        panic!("slot b's attached UBI does not open");
    };
    assert_eq!(name, "rootfs");
    assert!(make.is_some_and(|m| m.bytes.is_none()));
    // Not attached by the agent: closing leaves it attached.
    assert_eq!(ubi.close(), None);
    // The running slot's partition, named by a wrong layout: its volume is the root.
    let e = open_target(&root, &rootfs_on(PARTS[1])).err().unwrap();
    assert!(mounted_at_root(&e), "{e}");
    assert!(e.to_string().contains("mounted at /"), "{e}");
    // The same for the ab.json form naming the device by number.
    let legacy = Target::UbiVolume {
        ubi: 0,
        volume: "rootfs".into(),
    };
    let e = open_target(&root, &legacy).err().unwrap();
    assert!(mounted_at_root(&e), "{e}");
    assert!(e.to_string().contains("mounted at /"), "{e}");
}

fn mounted_at_root(e: &AbError) -> bool {
    matches!(e, AbError::Refused(RefusedError::Mounted { at, .. }) if at == "/")
}

#[test]
fn foreign_data_is_found_before_an_attach_could_erase_it() {
    const EB: u32 = 16 * 1024;
    let mut f = SimFlash::nand(16, EB, 2048);
    let mut ec = vec![0u8; 64];
    ec[..4].copy_from_slice(b"UBI#");
    for b in [0, 1, 5] {
        f.load(b * u64::from(EB), &ec);
    }
    assert_eq!(foreign_blocks(&mut f).unwrap(), Vec::<u64>::new());
    // A vendor image: anything but 0xFF or a UBI header at a block's start.
    f.load(7 * u64::from(EB), &[0x27, 0x05, 0x19, 0x56]);
    f.load(9 * u64::from(EB) + 63, &[0]);
    f.set_bad(12);
    f.load(12 * u64::from(EB), &[1]);
    assert_eq!(foreign_blocks(&mut f).unwrap(), vec![7, 9]);
}

#[test]
fn a_partition_that_cannot_be_attached_is_a_clear_error() {
    use liminix_ubi::UbiError;
    let refused = UbiError::Ioctl {
        op: "UBI_IOCATT",
        path: "/dev/ubi_ctrl".into(),
        what: "mtd3".into(),
        source: rustix::io::Errno::INVAL,
    };
    let e = attach_error("ubi_1", 3, refused);
    assert!(
        matches!(
            &e,
            AbError::Attach { partition, mtd: 3, reason: AttachError::Refused { mtd: 3, .. } }
                if partition == "ubi_1"
        ),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("partition ubi_1 (mtd3)"), "{msg}");
    assert!(msg.contains("UBI_IOCATT"), "{msg}");
    assert!(msg.contains("`ubiformat /dev/mtd3`"), "{msg}");
    assert!(msg.contains("Nothing was written"), "{msg}");
    let no_ubi = UbiError::Open {
        path: "/dev/ubi_ctrl".into(),
        source: rustix::io::Errno::NOENT,
    };
    let e = attach_error("ubi_1", 3, no_ubi);
    assert!(
        matches!(
            &e,
            AbError::Attach {
                reason: AttachError::NoUbi(_),
                ..
            }
        ),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("modprobe ubi"), "{msg}");
    // Below a root without the partition's device node nothing gets as far as an attach.
    let (_d, root) = device(&[(0, 1)], "");
    std::fs::write(root.join("/dev/ubi_ctrl"), b"").unwrap();
    let e = open_target(&root, &rootfs_on(PARTS[3])).err().unwrap();
    assert!(
        matches!(
            e,
            AbError::Io {
                what: "open UBI partition",
                ..
            }
        ),
        "{e}"
    );
    let e = open_target(&root, &rootfs_on("no-such-partition"))
        .err()
        .unwrap();
    assert!(
        matches!(&e, AbError::Config(ConfigError::Partition { spec, .. }) if spec == "mtd:no-such-partition"),
        "{e}"
    );
}

#[test]
fn an_oversized_rootfs_is_refused_before_the_slot_is_opened() {
    let (dir, root) = device(&[(0, 1)], "");
    std::fs::create_dir_all(root.join("/proc/device-tree/chosen")).unwrap();
    std::fs::write(
        root.join("/proc/device-tree/chosen/bootargs"),
        "console=ttyS0 bootImage=0",
    )
    .unwrap();
    let b = liminix_boards::builtin("vm-ab-zyxel").unwrap();
    let board = crate::apply::ab::ab_board(&root, &b).unwrap();
    let max = board.slots[1].rootfs_max;
    assert_eq!(
        max,
        20 * 129024,
        "64 PEBs less 4 and the 40 of the bad-block reserve"
    );
    let staged = |role, name: &str, len: usize| {
        let path = dir.path().join(name);
        std::fs::write(&path, vec![0x5Au8; len]).unwrap();
        let sha256 = sha2::Sha256::digest(vec![0x5Au8; len]).into();
        StagedImage { role, path, sha256 }
    };
    let opts = InstallOptions {
        bundle_board: "vm-ab-zyxel".into(),
        reboot: false,
    };
    let kernel = staged(ImageRole::Kernel, "k", 1000);
    let big = staged(ImageRole::Rootfs, "big", max as usize + 1);
    let e = crate::ab::install(&root, &board, &[kernel.clone(), big], &opts).unwrap_err();
    assert!(
        matches!(
            e,
            AbError::Layout(LayoutError::TooLarge {
                what: "rootfs",
                slot: Slot::B,
                ..
            })
        ),
        "{e}"
    );
    // A rootfs that fits gets as far as the devices, which this root does not have.
    let fits = staged(ImageRole::Rootfs, "fits", max as usize);
    let both = [kernel, fits];
    let e = crate::ab::install(&root, &board, &both, &opts).unwrap_err();
    assert!(!matches!(e, AbError::Layout(_)), "{e}");
    // A layout whose inactive slot names the running slot's partition is refused too.
    let mut wrong = board.clone();
    wrong.slots[1].rootfs = wrong.slots[0].rootfs.clone();
    let e = crate::ab::install(&root, &wrong, &both, &opts).unwrap_err();
    assert!(
        matches!(
            e,
            AbError::Config(ConfigError::SharedTarget { slot: Slot::B, .. })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("with the running slot a"), "{e}");
}
