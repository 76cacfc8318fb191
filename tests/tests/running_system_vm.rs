//! Never write under the running system: on a NOR board the root squashfs is the `rootfs`
//! partition inside `firmware`, so `flashcp IMAGE mtd:firmware` and an `apply` of a firmware
//! image must be refused while it is mounted, and work from a levitated system.
//!
//! Real: Debian's x86_64 kernel in QEMU (TCG), block2mtd on a virtio disk (a file on the host
//! afterwards), partitions added with mtd-utils' `mtdpart` (the test kernel has no
//! `CONFIG_MTD_CMDLINE_PARTS`, so no `mtdparts=`; the kernel's BLKPG partitions sit beside
//! their master in sysfs, as top-level partitions do on a router's chip), a squashfs made by
//! `mksquashfs` mounted from the `rootfs` mtdblock, the static agent, a bundle packed and signed
//! by the packer on the host. Played: levitate, by a chroot on a tmpfs holding the agent and
//! busybox (no s6): the kernel lists in `/proc/self/mountinfo` only mounts below the caller's
//! root, so inside it the squashfs is not in the table and the write goes ahead.
//!
//! Oracles: the agent's exit codes and JSON error kinds; the whole MTD device hashed before and
//! after the refusals; `/proc/self/mountinfo` read inside the chroot; the disk file on the host,
//! whose firmware range must hold the new image after the levitated write and whose u-boot
//! range must be as it was.

use std::path::{Path, PathBuf};
use std::process::Command;

use liminix_build_tools::images::ImageInput;
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::SecretKey;
use liminix_tests::data::pattern;
use liminix_vm::{build_static, StaticTarget, VmBuilder};

const MIB: usize = 1 << 20;
const FIRMWARE_AT: usize = 0x40000;
const FIRMWARE_LEN: usize = 0x300000;
/// `rootfs` starts this far into `firmware`, after the kernel.
const KERNEL_LEN: usize = 0x100000;

/// A board whose firmware partition is the one the guest adds on block2mtd.
const BOARD: &str = r#"
name = "vm-nor-split"
description = "QEMU test board: block2mtd 4 MiB, firmware holding the root squashfs"
strategy = "raw"
cpu = "x86_64"

[[flash]]
name = "block2mtd"
type = "nor"
size = 0x400000
erase_size = 0x10000

  [[flash.partition]]
  name = "firmware"
  offset = 0x40000
  size = 0x300000

[[image]]
name = "firmware"
target = "mtd:firmware"
"#;

const SCRIPT: &str = r#"
exec 2>&1
mtdpart add /dev/mtd0 u-boot 0 0x40000
mtdpart add /dev/mtd0 firmware 0x40000 0x300000
mtdpart add /dev/mtd0 rootfs 0x140000 0x100000
cat /proc/mtd
modprobe mtdblock
modprobe squashfs
mkdir -p /mnt/root
mount -t squashfs -o ro /dev/mtdblock3 /mnt/root
echo "running banner=$(cat /mnt/root/banner)"
mkdir -p /r/etc/liminix/trusted-keys /r/persist /r/run
ln -s /sys /r/sys; ln -s /dev /r/dev; ln -s /proc /r/proc
echo vm-nor-split > /r/etc/liminix/board
cp /img/board.toml /r/etc/liminix/board.toml
cp /img/build.pub /r/etc/liminix/trusted-keys/
before=$(sha256sum /dev/mtd0 | cut -c1-64)
rc=0; liminix-agent flashcp /img/fw1 mtd:firmware > /tmp/flashcp.err 2>&1 || rc=$?
echo "flashcp rc=$rc"
sed 's/^/flashcp-says: /' /tmp/flashcp.err
json flashcp-json liminix-agent --json flashcp /img/fw1 /dev/mtd2
json apply-json liminix-agent --root /r --json apply /img/fw1.bundle
json rootfs-json liminix-agent --json flashcp /img/fw1 mtd:rootfs
json master-json liminix-agent --json flashcp /img/fw1 /dev/mtd0
json uboot-json liminix-agent --json flashcp /img/uboot mtd:u-boot
after=$(sha256sum /dev/mtd0 | cut -c1-64)
[ "$before" = "$(sha256sum /img/disk-before | cut -c1-64)" ] && echo "before-is-disk equal=1"
[ "$before" = "$after" ] && echo "refusals-wrote equal=1" || echo "refusals-wrote equal=0"

# The levitated stand-in: a chroot on a tmpfs.
mkdir -p /run/m
mount -t tmpfs tmpfs /run/m
mkdir -p /run/m/bin /run/m/proc /run/m/sys /run/m/dev /run/m/img
cp /bin/busybox /bin/liminix-agent /run/m/bin/
cp /img/fw1 /run/m/img/
mount -t proc proc /run/m/proc
mount -t sysfs sysfs /run/m/sys
mount -t devtmpfs devtmpfs /run/m/dev
chroot /run/m /bin/busybox cat /proc/self/mountinfo | sed 's/^/chroot-mountinfo: /'
json levitated chroot /run/m /bin/liminix-agent --json flashcp /img/fw1 mtd:firmware
same 3145728 /dev/mtd2 /img/fw1 levitated-flash
"#;

fn mksquashfs(dir: &Path, banner: &str, out: &Path) -> Vec<u8> {
    let tree = dir.join(format!("tree-{banner}"));
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("banner"), banner).unwrap();
    let st = Command::new("mksquashfs")
        .arg(&tree)
        .arg(out)
        .args(["-noappend", "-quiet", "-all-root", "-mkfs-time", "1"])
        .status()
        .expect("mksquashfs (squashfs-tools)");
    assert!(st.success(), "mksquashfs: {st}");
    std::fs::read(out).unwrap()
}

/// A firmware image: a kernel stand-in, then the squashfs at the `rootfs` offset.
fn firmware(seed: u8, squashfs: &[u8]) -> Vec<u8> {
    let mut fw = pattern(seed.into(), KERNEL_LEN);
    fw.extend_from_slice(squashfs);
    assert!(fw.len() <= FIRMWARE_LEN, "firmware {} bytes", fw.len());
    fw
}

fn bundle(dir: &Path, key: &SecretKey, image: &Path) -> PathBuf {
    let board = liminix_build_tools::liminix_boards::parse(BOARD, "vm-nor-split").unwrap();
    let inputs = [ImageInput {
        name: "firmware".into(),
        file: image.to_path_buf(),
        base: None,
    }];
    let opts = PackOptions {
        store_root: Path::new("/nonexistent"),
        toplevel: None,
        board: "vm-nor-split",
        epoch: 1,
        build_time: 1,
        level: 3,
        images: &inputs,
        board_def: Some(&board),
        raw_images: false,
    };
    let path = dir.join("fw1.bundle");
    write_bundle(&opts, key, &path, &|_, _| {}).unwrap();
    path
}

#[test]
fn firmware_under_the_mounted_root_is_written_only_from_a_levitated_system() {
    let agent = build_static("liminix-agent", StaticTarget::Bin("liminix-agent")).unwrap();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let old = firmware(1, &mksquashfs(dir, "old", &dir.join("old.sqfs")));
    let new = firmware(2, &mksquashfs(dir, "new", &dir.join("new.sqfs")));
    let mut disk = vec![0xFFu8; 4 * MIB];
    let uboot = pattern(3, FIRMWARE_AT);
    disk[..FIRMWARE_AT].copy_from_slice(&uboot);
    disk[FIRMWARE_AT..FIRMWARE_AT + old.len()].copy_from_slice(&old);
    let mut fw1 = new.clone();
    fw1.resize(FIRMWARE_LEN, 0xFF);
    let files = [
        ("disk-before", disk.clone()),
        ("fw1", fw1.clone()),
        ("uboot", uboot.clone()),
        ("board.toml", BOARD.as_bytes().to_vec()),
    ];
    let disk_path = dir.join("flash.img");
    std::fs::write(&disk_path, &disk).unwrap();
    let key = SecretKey::generate();
    let public = dir.join("build.pub");
    std::fs::write(&public, key.public().to_file_text()).unwrap();
    let mut vm = VmBuilder::new()
        .memory_mb(512)
        .timeout(300)
        .modprobe("block2mtd", "block2mtd=/dev/vda,64KiB")
        .module("mtdblock")
        .module("squashfs")
        .host_tool("mtdpart")
        .disk(&disk_path)
        .file(&agent, "/bin/liminix-agent")
        .file(&public, "/img/build.pub");
    for (name, data) in files {
        std::fs::write(dir.join(name), data).unwrap();
        vm = vm.file(dir.join(name), &format!("/img/{name}"));
    }
    let b = bundle(dir, &key, &dir.join("fw1"));
    let out = vm.file(&b, "/img/fw1.bundle").script(SCRIPT).run().unwrap();
    if std::env::var_os("LIMINIX_VM_SERIAL").is_some() {
        eprintln!("{}", out.serial);
    }
    out.assert_success();
    let s = &out.serial;
    assert_eq!(out.require_field("running", "banner"), "old");
    assert_eq!(out.require_field("before-is-disk", "equal"), "1");

    // flashcp by name and by number, apply, the rootfs itself, the master: refused with
    // `mounted` (exit 4), naming the mount point and the ways that work.
    assert_eq!(out.require_field("flashcp", "rc"), "4", "{s}");
    let says: String = out.lines_starting("flashcp-says: ").join("\n");
    for words in [
        "refusing to write mtd:firmware",
        "/dev/mtdblock3 from mtd3 (rootfs)",
        "is mounted on /mnt/root",
        "liminix-agent levitate",
        "update.sh root@router",
    ] {
        assert!(says.contains(words), "{words:?} not in:\n{says}");
    }
    for tag in ["flashcp-json", "apply-json", "rootfs-json", "master-json"] {
        let (rc, v) = out.json_rc(tag);
        assert_eq!((rc, v["kind"].as_str()), (4, Some("mounted")), "{tag}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("/mnt/root"),
            "{tag}: {v}"
        );
    }
    // u-boot shares no byte with rootfs: written (and unchanged, it holds the same data).
    let (rc, v) = out.json_rc("uboot-json");
    assert_eq!(rc, 0, "{v}");
    assert_eq!(out.require_field("refusals-wrote", "equal"), "1", "{s}");

    // In the chroot the squashfs is not in the mount table, and the write goes ahead.
    let chroot_mounts = out.lines_starting("chroot-mountinfo: ");
    assert!(!chroot_mounts.is_empty(), "{s}");
    assert!(
        chroot_mounts.iter().all(|l| !l.contains("squashfs")),
        "{chroot_mounts:#?}"
    );
    let lev = out.json("levitated");
    assert_eq!(lev["target"], "mtd:firmware", "{lev}");
    assert_eq!(out.require_field("levitated-flash", "equal"), "1");

    let after = std::fs::read(&disk_path).unwrap();
    assert!(after[..FIRMWARE_AT] == uboot[..], "u-boot range changed");
    assert!(
        after[FIRMWARE_AT..FIRMWARE_AT + FIRMWARE_LEN] == fw1[..],
        "the firmware range does not hold the new image"
    );
}
