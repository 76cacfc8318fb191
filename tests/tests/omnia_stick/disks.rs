//! The disks of the Omnia bed: the closure bundle (the "generation"), the eMMC with the
//! marker TurrisOS system, the stick, and the small initramfs both systems boot, which
//! proves from the console which `@` U-Boot booted.

use std::path::{Path, PathBuf};
use std::process::Command;

use liminix_tests::device::pack_binary;
use liminix_vm::arm::assets;
use liminix_vm::debian;
use liminix_vm::initramfs::Initramfs;

use super::{run, ENV_SIZE};

pub const EXTLINUX: &str = "/nix/store/0k1s7lnw2dy5ah8ylvm6x4a9dhmhnxcz-extlinux";
pub const TOPLEVEL: &str = "/nix/store/1b8fq3xkcmnqjhhm9ksm1s4d7lg2vdzr-system-configuration";
/// eMMC partitions (start, sectors): btrfs, then the FAT with the U-Boot variables.
pub const EMMC: [(u64, u64); 2] = [(2048, 524288), (526336, 16384)];
/// What the generation's toplevel holds, printed by its boot from the installed `@`.
pub const GENERATION_MARKER: &str = "Liminix generation 1b8fq3xk";
/// What the vendor system's `@/marker` holds.
pub const VENDOR_MARKER: &str = "TurrisOS";

/// An initramfs whose /init mounts `@` of the eMMC btrfs read-only and prints `@/marker`
/// and, for a Liminix root, the toplevel's marker and the target of `@/init`, then
/// powers off: the console line `probe NAME: …` says which system's root U-Boot booted.
pub fn probe_initramfs(a: &debian::Assets, name: &str, out: &Path) {
    let mut cpio = Initramfs::new();
    cpio.copy(&a.busybox, "/bin/busybox").unwrap();
    let modules = ["virtio_mmio", "virtio_blk", "crc32c_generic", "btrfs"];
    cpio.modules(&a.kernel, &modules.map(String::from)).unwrap();
    let init = format!(
        "#!/bin/busybox sh\n\
         b=/bin/busybox\n\
         $b mkdir -p /proc /dev /mnt\n\
         $b mount -t proc proc /proc\n\
         $b mount -t devtmpfs dev /dev\n\
         for m in {}; do $b modprobe $m; done\n\
         for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda1 ] && break; $b sleep 1; done\n\
         $b mount -t btrfs -o ro,subvol=@ /dev/vda1 /mnt\n\
         echo \"probe {name}: marker=$($b cat /mnt/marker 2>/dev/null) \
         generation=$($b cat /mnt{TOPLEVEL}/etc/marker 2>/dev/null) \
         init=$($b readlink /mnt/init 2>/dev/null)\"\n\
         $b poweroff -f\n",
        modules.join(" ")
    );
    cpio.bytes("/init", init.as_bytes(), 0o755);
    cpio.write(out).unwrap();
}

/// A Liminix-shaped closure whose boot files are Debian's armmp zImage, the probe
/// initramfs and an extlinux.conf naming them.
pub fn closure_bundle(dir: &Path, a: &debian::Assets) -> (PathBuf, PathBuf) {
    let store = dir.join("store");
    let ext = store.join(&EXTLINUX[1..]);
    std::fs::create_dir_all(ext.join("extlinux")).unwrap();
    std::fs::write(
        ext.join("extlinux/extlinux.conf"),
        "label liminix\n  kernel /boot/kernel\n  initrd /boot/initramfs\n  \
         append console=ttyAMA0 panic=-1 root=/dev/mmcblk0p1 rootflags=subvol=@\n",
    )
    .unwrap();
    std::fs::copy(&a.kernel.image, ext.join("kernel")).unwrap();
    probe_initramfs(a, "liminix", &ext.join("initramfs"));
    let top = store.join(&TOPLEVEL[1..]);
    std::fs::create_dir_all(top.join("bin")).unwrap();
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(top.join("bin/activate"), "#!/bin/sh\n").unwrap();
    std::fs::write(top.join("bin/init"), "#!/bin/sh\n").unwrap();
    std::fs::write(top.join("etc/marker"), GENERATION_MARKER).unwrap();
    std::fs::write(top.join("etc/nix-store-paths"), format!("{EXTLINUX}\n")).unwrap();
    let (sec, public) = (dir.join("k.sec"), dir.join("k.pub"));
    run(Command::new(pack_binary())
        .args(["keygen", "--secret"])
        .arg(&sec)
        .arg("--public")
        .arg(&public));
    let out = dir.join("system.bundle");
    run(Command::new(pack_binary())
        .args(["bundle", "--board", "turris-omnia", "--toplevel", TOPLEVEL])
        .args(["--level", "3", "--store-root"])
        .arg(&store)
        .arg("--key")
        .arg(&sec)
        .arg("--out")
        .arg(&out));
    (out, public)
}

fn partition_table(disk: &Path) {
    let mut sf = Command::new("sfdisk")
        .arg("--quiet")
        .arg(disk)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let table = format!(
        "label: dos\nstart={}, size={}, type=83, bootable\nstart={}, size={}, type=c\n",
        EMMC[0].0, EMMC[0].1, EMMC[1].0, EMMC[1].1
    );
    std::io::Write::write_all(sf.stdin.as_mut().unwrap(), table.as_bytes()).unwrap();
    drop(sf.stdin.take());
    assert!(sf.wait().unwrap().success());
}

/// The vendor's btrfs: `@` holding the marker and its own boot files (the armmp kernel and
/// the probe initramfs), and `boot` on the top level leading to `@/boot`.
fn vendor_btrfs(dir: &Path, a: &debian::Assets) -> PathBuf {
    let fs = dir.join("btrfs.img");
    std::fs::File::create(&fs)
        .unwrap()
        .set_len(EMMC[0].1 * 512)
        .unwrap();
    run(Command::new("mkfs.btrfs").arg("-q").arg(&fs));
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&fs)
        .arg(&mnt));
    run(Command::new("btrfs")
        .args(["subvolume", "create"])
        .arg(mnt.join("@")));
    let boot = mnt.join("@/boot");
    std::fs::create_dir_all(boot.join("extlinux")).unwrap();
    std::fs::write(mnt.join("@/marker"), format!("{VENDOR_MARKER}\n")).unwrap();
    std::fs::write(
        boot.join("extlinux/extlinux.conf"),
        "label turris\n  kernel /boot/kernel\n  initrd /boot/initramfs\n  \
         append console=ttyAMA0 panic=-1\n",
    )
    .unwrap();
    std::fs::copy(&a.kernel.image, boot.join("kernel")).unwrap();
    probe_initramfs(a, "turris", &boot.join("initramfs"));
    std::os::unix::fs::symlink("@/boot", mnt.join("boot")).unwrap();
    run(Command::new("umount").arg(&mnt));
    fs
}

/// The eMMC: MBR, the vendor's btrfs, a FAT with `uboot.env`.
pub fn emmc(dir: &Path, a: &debian::Assets) -> PathBuf {
    let disk = dir.join("emmc.img");
    let end = EMMC[1].0 + EMMC[1].1;
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(end * 512)
        .unwrap();
    partition_table(&disk);
    let fs = vendor_btrfs(dir, a);
    let vars = dir.join("uboot.env");
    assets::env_image("boot_targets=usb0 virtio0\n", ENV_SIZE, &vars).unwrap();
    let fat = dir.join("env.fat");
    assets::fat_image(&fat, EMMC[1].1 / 2, &[("uboot.env", &vars)]).unwrap();
    for (img, (start, _)) in [(&fs, EMMC[0]), (&fat, EMMC[1])] {
        run(Command::new("dd")
            .arg(format!("if={}", img.display()))
            .arg(format!("of={}", disk.display()))
            .args(["bs=512", &format!("seek={start}"), "conv=notrunc,sparse"])
            .arg("status=none"));
    }
    disk
}

/// The stick: the packer's, with the ARMv7 agent, Debian's armhf busybox and dropbear, and
/// an appended archive of the kernel modules the guest needs.
pub fn stick(
    dir: &Path,
    a: &debian::Assets,
    host_key: &Path,
    id_pub: &Path,
    trusted: &Path,
) -> PathBuf {
    let agent = liminix_vm::build::armv7_agent_with_ab_apply().unwrap().0;
    let sysroot = liminix_vm::cache_dir("vm-debian").join("armhf-dropbear");
    let script = liminix_vm::workspace_root().join("tests/vm/fetch-debian-dropbear.sh");
    run(Command::new("sh").arg(script).arg("armhf").arg(&sysroot));
    let root = sysroot.join("root");
    let mut extra = Initramfs::new();
    let modules: Vec<String> = [
        "virtio_mmio",
        "virtio_blk",
        "virtio_net",
        // libcrc32c (a btrfs dependency) asks the crypto API for crc32c, a module here.
        "crc32c_generic",
        "btrfs",
        "vfat",
        "nls_cp437",
        "nls_ascii",
    ]
    .map(String::from)
    .to_vec();
    extra.modules(&a.kernel, &modules).unwrap();
    extra.bytes(
        "/etc/modules",
        (modules.join("\n") + "\n").as_bytes(),
        0o644,
    );
    let extra_path = dir.join("modules.cpio");
    extra.write(&extra_path).unwrap();
    let cfg = dir.join("fw_env.config");
    std::fs::write(&cfg, format!("/env/uboot.env 0x0 {ENV_SIZE:#x}\n")).unwrap();
    let out = dir.join("stick.img");
    run(Command::new(pack_binary())
        .arg("recovery")
        .arg("--agent")
        .arg(&agent)
        .arg("--busybox")
        .arg(&a.busybox)
        .arg("--dropbear")
        .arg(root.join("usr/sbin/dropbear"))
        .arg("--lib-root")
        .arg(&root)
        .arg("--authorized-keys")
        .arg(id_pub)
        .arg("--host-key")
        .arg(host_key)
        .args(["--dhcp", "eth0", "--board", "turris-omnia"])
        .arg("--trusted-key")
        .arg(trusted)
        .arg("--fw-env-config")
        .arg(&cfg)
        .arg("--kernel")
        .arg(&a.kernel.image)
        .args(["--append", "console=ttyAMA0 panic=-1"])
        .arg("--append-initramfs")
        .arg(&extra_path)
        .arg("--stick")
        .arg(&out));
    out
}
