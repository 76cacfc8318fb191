//! Captured sysfs trees and mount tables: the block2mtd layout of the VM test (partitions
//! added beside their master), an ath79-style SPI NOR chip whose `firmware` the kernel split
//! into nested `kernel` and `rootfs`, NAND with UBI, and the view from inside a chroot.

use super::*;
use std::fs;

const VIRTUAL: &str = "devices/virtual/mtd";
const SPI: &str = "devices/platform/ahb/18000000.spi/spi_master/spi0/spi0.0/mtd";

struct Tree(tempfile::TempDir);

struct Dev<'a> {
    index: u32,
    name: &'a str,
    kind: &'a str,
    size: u64,
    offset: Option<u64>,
    /// Sysfs path below ROOT/sys (the parent's path for a nested device).
    at: String,
}

fn dev<'a>(index: u32, name: &'a str, size: u64, offset: Option<u64>, dir: &str) -> Dev<'a> {
    Dev {
        index,
        name,
        kind: "nor",
        size,
        offset,
        at: format!("{dir}/mtd{index}"),
    }
}

impl Tree {
    fn new() -> Tree {
        Tree(tempfile::tempdir().unwrap())
    }

    fn root(&self) -> &Path {
        self.0.path()
    }

    fn add(&self, d: Dev) -> &Self {
        let dir = self.root().join("sys").join(&d.at);
        fs::create_dir_all(&dir).unwrap();
        let eb = if d.kind == "nand" { "131072" } else { "65536" };
        let ws = if d.kind == "nand" { "2048" } else { "1" };
        for (k, v) in [
            ("name", d.name.to_string()),
            ("type", d.kind.to_string()),
            ("size", d.size.to_string()),
            ("erasesize", eb.into()),
            ("writesize", ws.into()),
            ("oobsize", "0".into()),
        ] {
            fs::write(dir.join(k), format!("{v}\n")).unwrap();
        }
        if let Some(o) = d.offset {
            fs::write(dir.join("offset"), format!("{o}\n")).unwrap();
        }
        let class = self.root().join("sys/class/mtd");
        fs::create_dir_all(&class).unwrap();
        let link = format!("../../{}", d.at);
        std::os::unix::fs::symlink(link, class.join(format!("mtd{}", d.index))).unwrap();
        self
    }

    fn mountinfo(&self, lines: &[&str]) -> &Self {
        let p = self.root().join("proc/self");
        fs::create_dir_all(&p).unwrap();
        let mut text = String::from("21 1 0:19 / /proc rw,relatime - proc proc rw\n");
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        fs::write(p.join("mountinfo"), text).unwrap();
        self
    }

    fn ubi(&self, num: u32, mtd: u32) -> &Self {
        let d = self.root().join(format!("sys/class/ubi/ubi{num}"));
        fs::create_dir_all(&d).unwrap();
        for (k, v) in [
            ("mtd_num", mtd),
            ("avail_eraseblocks", 10),
            ("eraseblock_size", 126976),
            ("total_eraseblocks", 100),
            ("min_io_size", 2048),
            ("max_vol_count", 128),
            ("volumes_count", 1),
            ("bad_peb_count", 0),
        ] {
            fs::write(d.join(k), format!("{v}\n")).unwrap();
        }
        self
    }

    fn used(&self, index: u32) -> Option<InUse> {
        partition_in_use(self.root(), index).unwrap()
    }
}

fn use_of(mount_point: &str, source: &str, mtd: u32, name: &str, assumed: bool) -> InUse {
    InUse {
        mount_point: mount_point.into(),
        source: source.into(),
        mtd,
        mtd_name: name.into(),
        assumed,
    }
}

/// What the x86_64 test kernel shows for block2mtd with `firmware` and `rootfs` added by
/// BLKPG (`mtdpart add`): every device in `virtual`, offsets from the master.
fn block2mtd() -> Tree {
    let t = Tree::new();
    t.add(dev(0, "block2mtd: /dev/vda", 0x400000, None, VIRTUAL))
        .add(dev(1, "firmware", 0x300000, Some(0x40000), VIRTUAL))
        .add(dev(2, "rootfs", 0x100000, Some(0x140000), VIRTUAL))
        .add(dev(3, "u-boot", 0x40000, Some(0), VIRTUAL));
    t
}

const SQUASHFS_ON_MTD2: &str =
    "25 1 31:2 / /mnt/root ro,relatime - squashfs /dev/mtdblock2 ro,errors=continue";

#[test]
fn firmware_holding_the_mounted_rootfs_is_in_use() {
    let t = block2mtd();
    t.mountinfo(&[SQUASHFS_ON_MTD2]);
    let rootfs = use_of("/mnt/root", "/dev/mtdblock2", 2, "rootfs", false);
    assert_eq!(t.used(2), Some(rootfs.clone()));
    // Sysfs does not say firmware and rootfs are on one chip: geometry and directory
    // agree, so they are taken to be.
    let assumed = InUse {
        assumed: true,
        ..rootfs
    };
    assert_eq!(t.used(1), Some(assumed.clone()));
    assert_eq!(t.used(0), Some(assumed));
    assert_eq!(t.used(3), None, "u-boot ends where firmware starts");
    assert_eq!(t.used(7), None, "no such device");
}

#[test]
fn the_kernels_root_is_found_by_device_number() {
    let t = Tree::new();
    let fw = format!("{SPI}/mtd2");
    t.add(dev(0, "u-boot", 0x40000, Some(0), SPI))
        .add(dev(1, "u-boot-env", 0x10000, Some(0x40000), SPI))
        .add(dev(2, "firmware", 0xfa0000, Some(0x50000), SPI))
        .add(dev(3, "kernel", 0x200000, Some(0), &fw))
        .add(dev(4, "rootfs", 0xda0000, Some(0x200000), &fw))
        .add(dev(5, "art", 0x10000, Some(0xff0000), SPI))
        .mountinfo(&["15 1 31:4 / / ro,relatime - squashfs /dev/root ro,errors=continue"]);
    let root = use_of("/", "/dev/root", 4, "rootfs", false);
    assert_eq!(t.used(4), Some(root.clone()));
    // Nested under firmware: certain, not assumed.
    assert_eq!(t.used(2), Some(root));
    assert_eq!(t.used(3), None, "kernel ends where rootfs starts");
    assert_eq!(t.used(0), None);
    assert_eq!(t.used(5), None);
}

#[test]
fn masters_of_other_chips_are_apart() {
    let t = Tree::new();
    let mut nand = dev(1, "NAND 128MiB 1,8V 8-bit", 0x8000000, None, VIRTUAL);
    nand.kind = "nand";
    t.add(dev(0, "block2mtd: /dev/vda", 0x400000, None, VIRTUAL))
        .add(nand)
        .add(dev(2, "block2mtd: /dev/vdb", 0x400000, None, VIRTUAL))
        .mountinfo(&["25 1 31:0 / /mnt ro - squashfs /dev/mtdblock0 ro"]);
    assert!(t.used(0).is_some());
    assert_eq!(t.used(1), None, "another geometry");
    assert_eq!(t.used(2), None, "two masters are two chips");
}

#[test]
fn mounts_by_name() {
    let t = block2mtd();
    t.mountinfo(&["30 1 0:31 / /data rw - jffs2 mtd:u-boot rw"]);
    assert_eq!(
        t.used(3),
        Some(use_of("/data", "mtd:u-boot", 3, "u-boot", false))
    );
    assert_eq!(t.used(2), None);
    t.mountinfo(&["30 1 0:31 / /data rw - jffs2 mtd3 rw"]);
    assert!(t.used(3).is_some());
    // Without mountinfo the source alone still tells.
    fs::remove_file(t.root().join("proc/self/mountinfo")).unwrap();
    fs::write(
        t.root().join("proc/mounts"),
        "/dev/mtdblock2 /mnt/root squashfs ro 0 0\n",
    )
    .unwrap();
    assert_eq!(t.used(1).map(|u| u.mtd), Some(2));
}

#[test]
fn ubi_volumes_and_ubiblock_on_the_partition() {
    let t = Tree::new();
    let mut ubi = dev(1, "ubi", 0x7000000, Some(0x1000000), VIRTUAL);
    ubi.kind = "nand";
    t.add(dev(0, "spare", 0x100000, None, VIRTUAL))
        .add(ubi)
        .ubi(0, 1);
    t.mountinfo(&["30 1 0:22 / /persist rw - ubifs ubi0:persist rw"]);
    assert_eq!(
        t.used(1),
        Some(use_of("/persist", "ubi0:persist", 1, "ubi", false))
    );
    t.mountinfo(&["30 1 0:22 / /persist rw - ubifs ubi:persist rw"]);
    assert!(t.used(1).is_some(), "ubi:NAME is device 0");
    t.mountinfo(&["30 1 0:22 / /persist rw - ubifs ubi1:persist rw"]);
    assert_eq!(t.used(1), None, "another UBI device");
    let blk = t.root().join("sys/class/block/ubiblock0_3");
    fs::create_dir_all(&blk).unwrap();
    fs::write(blk.join("dev"), "254:0\n").unwrap();
    t.mountinfo(&["15 1 254:0 / / ro - squashfs /dev/root ro"]);
    assert_eq!(t.used(1), Some(use_of("/", "/dev/root", 1, "ubi", false)));
}

#[test]
fn a_chroot_sees_only_its_own_mounts() {
    // What `cat /proc/self/mountinfo` printed inside a chroot on a tmpfs in the VM: the
    // squashfs on mtdblock2 outside it is not listed.
    let t = block2mtd();
    t.mountinfo(&["26 1 0:22 / / rw,relatime - tmpfs tmpfs rw,inode64"]);
    assert_eq!(t.used(1), None);
}

#[test]
fn no_mount_table_is_an_error() {
    let t = block2mtd();
    let e = partition_in_use(t.root(), 1).unwrap_err();
    assert!(matches!(e, InUseError::Mounts { .. }), "{e}");
}
