//! Real U-Boot boots the packer's outputs: Debian's qemu_arm U-Boot in `qemu-system-arm -M
//! virt` (TCG) fetches each output over TFTP from QEMU's user-mode network and boots Debian's
//! armmp kernel from it to userland, or runs a `flash.scr` against the virt machine's CFI flash;
//! the tftpboot output also boots with `booti` on the arm64 virt machine (qemu_arm64 U-Boot,
//! Debian's arm64 Image). One test per boot; each is a fresh machine (liminix_vm::arm::net).
//!
//! Debian's ARM kernels have no phram driver, so the tftpboot guest cannot attach the phram
//! device its command line names. It checks everything else the output sets up: the command
//! line, the `/reserved-memory/phram-rootfs@…` node, and the root filesystem image in the
//! reserved RAM, which it reads through /dev/mem and mounts.

use std::path::Path;
use std::time::{Duration, Instant};

use liminix_build_tools::image::bootfiles::{self, BootFiles};
use liminix_build_tools::image::commands::{self, MtdFlash, Tftp};
use liminix_build_tools::image::fit::{self, Fit, Hash};
use liminix_build_tools::image::squashfs::{self, SquashfsSpec};
use liminix_build_tools::image::tftpboot::{self, BootCommand, TftpbootError, TftpbootSpec};
use liminix_build_tools::image::uimage::{self, Header};
use liminix_build_tools::image::{script, Arch, Compression, Payload};
use liminix_vm::arm::arm64;
use liminix_vm::arm::net::{Cpu, NetBed, FLASH_SECTOR};
use liminix_vm::debian::{self, Arch as DebianArch};
use liminix_vm::initramfs::Initramfs;

const TIMEOUT: Duration = Duration::from_secs(400);
const TIME: u32 = 1_700_000_000;
/// Where the kernel of the FIT and of the uImage runs: past the 21 MiB the armmp zImage
/// decompresses to at 0x40008000.
const KERNEL_LOAD: u32 = 0x4200_0000;
/// Where the FIT and uImage files are fetched to, and the initramfs.
const FILE_ADDR: u32 = 0x4400_0000;
const INITRD_ADDR: u32 = 0x4800_0000;

/// The U-Boot environment: no delay, no automatic TFTP after DHCP, and `bootcmd`.
fn env(bootcmd: &str, bootargs: Option<&str>) -> String {
    let mut lines = vec![
        "bootdelay=0".to_owned(),
        "autoload=no".to_owned(),
        "scriptaddr=0x40200000".to_owned(),
        "fdt_addr=0x40000000".to_owned(),
        format!("bootcmd=virtio scan; dhcp; {bootcmd}; echo BOOT-FAILED"),
    ];
    if let Some(a) = bootargs {
        lines.push(format!("bootargs={a}"));
    }
    lines.join("\n") + "\n"
}

fn armhf() -> debian::Assets {
    debian::assets(DebianArch::Armhf).unwrap()
}

/// The kernel file of `a` (a zImage for armhf, a plain Image for arm64).
fn zimage(a: &debian::Assets) -> Vec<u8> {
    std::fs::read(&a.kernel.image).unwrap()
}

/// An initramfs whose /init prints `LIMINIX-USERLAND <tag> cmdline=…`, runs `body`, and
/// powers off; with the kernel modules `modules`.
fn initramfs(a: &debian::Assets, tag: &str, body: &str, modules: &[&str]) -> Vec<u8> {
    let mut fs = Initramfs::new();
    for d in ["/bin", "/proc", "/sys", "/dev", "/tmp", "/mnt"] {
        fs.dir(d);
    }
    fs.copy(&a.busybox, "/bin/busybox").unwrap();
    let names: Vec<String> = modules.iter().map(|m| m.to_string()).collect();
    fs.modules(&a.kernel, &names).unwrap();
    let init = format!(
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nexport PATH=/bin\n\
         mount -t proc proc /proc\nmount -t sysfs sys /sys\nmount -t devtmpfs dev /dev\n\
         echo \"LIMINIX-USERLAND {tag} cmdline=$(cat /proc/cmdline)\"\n{body}\npoweroff -f\n"
    );
    fs.bytes("/init", init.as_bytes(), 0o755);
    fs.finish()
}

fn put(bed: &NetBed, name: &str, data: &[u8]) {
    std::fs::write(bed.tftp_dir().join(name), data).unwrap();
}

/// Boots until the guest prints `LIMINIX-USERLAND <tag>` and powers off; the console.
fn boot_to_userland(bed: &NetBed, tag: &str) -> String {
    let start = Instant::now();
    let run = bed.boot("reboot: Power down", TIMEOUT).unwrap();
    eprintln!(
        "{tag}: {:.1} s from power-on to power-off",
        start.elapsed().as_secs_f64()
    );
    assert!(
        run.serial.contains(&format!("LIMINIX-USERLAND {tag}")),
        "{tag}: no userland marker:\n{}",
        run.serial
    );
    run.serial
}

#[test]
fn a_fit_boots_to_userland() {
    let a = armhf();
    let bed = NetBed::new().unwrap();
    let dtb = bed.dump_dtb().unwrap();
    let kernel = zimage(&a);
    let blob = fit::write(&Fit {
        description: "Liminix test FIT",
        arch: Arch::Arm,
        time: TIME,
        kernel: fit::Kernel {
            data: &kernel,
            compression: Compression::None,
            load: KERNEL_LOAD,
            entry: KERNEL_LOAD,
        },
        fdt: &dtb,
        hashes: &[Hash::Sha256, Hash::Crc32],
    })
    .unwrap();
    put(&bed, "fit.itb", &blob);
    put(&bed, "initrd", &initramfs(&a, "fit", "", &[]));
    // This U-Boot skips a default configuration without `compatible`: name conf-1.
    let cmd = format!(
        "tftp {FILE_ADDR:#x} fit.itb; tftp {INITRD_ADDR:#x} initrd; \
         bootm {FILE_ADDR:#x}#{} {INITRD_ADDR:#x}:${{filesize}}",
        fit::CONFIG_NODE
    );
    bed.set_env(&env(&cmd, Some("console=ttyAMA0 panic=-1 quiet")))
        .unwrap();
    let serial = boot_to_userland(&bed, "fit");
    assert!(
        serial.contains("Verifying Hash Integrity ... sha256+ crc32+ OK"),
        "{serial}"
    );
}

#[test]
fn a_legacy_uimage_boots_to_userland() {
    let a = armhf();
    let bed = NetBed::new().unwrap();
    let header = Header {
        name: "Liminix test kernel".into(),
        arch: Arch::Arm,
        payload: Payload::Kernel,
        compression: Compression::None,
        load: KERNEL_LOAD,
        entry: KERNEL_LOAD,
        time: TIME,
    };
    put(
        &bed,
        "uImage",
        &uimage::write(&header, &zimage(&a)).unwrap(),
    );
    put(&bed, "initrd", &initramfs(&a, "uimage", "", &[]));
    let cmd = format!(
        "tftp {FILE_ADDR:#x} uImage; tftp {INITRD_ADDR:#x} initrd; \
         bootm {FILE_ADDR:#x} {INITRD_ADDR:#x}:${{filesize}} ${{fdt_addr}}"
    );
    bed.set_env(&env(&cmd, Some("console=ttyAMA0 panic=-1 quiet")))
        .unwrap();
    let serial = boot_to_userland(&bed, "uimage");
    assert!(
        serial.contains("Image Name:   Liminix test kernel"),
        "{serial}"
    );
}

/// The root filesystem of the tftpboot boot: one file the guest prints.
const ROOT_FILE: &str = "etc/liminix-tftpboot";
const ROOT_TEXT: &str = "root filesystem read from phram RAM";

fn rootfs(dir: &Path) -> Vec<u8> {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join(ROOT_FILE), ROOT_TEXT).unwrap();
    let out = dir.join("rootfs.squashfs");
    let spec = SquashfsSpec {
        compression: squashfs::Compression::Gzip,
        epoch: u64::from(TIME),
        block_size: None,
    };
    squashfs::write(&tree, &spec, &out).unwrap();
    std::fs::read(&out).unwrap()
}

/// The guest's half of the tftpboot check: the phram arguments from the command line, the
/// reserved-memory node they must match, and the squashfs in that RAM. /dev/mem's read(2)
/// cannot reach `no-map` memory on ARM; `devmem` maps it, one 32-bit word at a time, so only
/// the image's used bytes (its superblock's `bytes_used`) are copied out.
const TFTPBOOT_GUEST: &str = r#"modprobe loop; modprobe squashfs
p=$(cat /proc/cmdline); p=${p##*phram.phram=}; p=${p%% *}
set -- $(echo "$p" | tr , ' ')
node=/sys/firmware/devicetree/base/reserved-memory/phram-rootfs@${2#0x}
echo "PHRAM-NODE compatible=$(cat $node/compatible) reg=$(od -An -tx1 $node/reg | tr -d ' \n') no-map=$(test -e $node/no-map && echo yes)"
used=$(($(devmem $(($2 + 40)) 32)))
i=0
while [ $i -lt $used ]; do
  w=$(devmem $(($2 + i)) 32); w=${w#0x}
  printf "\\x${w:6:2}\\x${w:4:2}\\x${w:2:2}\\x${w:0:2}"
  i=$((i + 4))
done > /tmp/rootfs
head -c 4096 /dev/zero >> /tmp/rootfs
echo "ROOTFS-BYTES $used"
mount -t squashfs -o loop,ro /tmp/rootfs /mnt && echo "ROOT-FILE $(cat /mnt/etc/liminix-tftpboot)""#;

fn tftpboot_spec<'a>(
    kernel: &'a [u8],
    dtb: &'a [u8],
    rootfs: &'a [u8],
    initramfs: Option<&'a [u8]>,
    load_address: u64,
) -> TftpbootSpec<'a> {
    TftpbootSpec {
        kernel,
        boot: BootCommand::Bootz,
        dtb,
        rootfs,
        initramfs,
        load_address,
        free_space: 0x10000,
        erase_size: 0x10000,
        command_line: "console=ttyAMA0 panic=-1",
        chosen_property: "bootargs",
        tftp: Tftp::default(),
        arch: Arch::Arm,
        time: TIME,
    }
}

/// Boots the tftpboot output made for `cpu` from `a`'s kernel, and checks what the guest saw.
fn tftpboot_boots(cpu: Cpu, a: &debian::Assets, boot: BootCommand, arch: Arch) {
    let bed = NetBed::with_cpu(cpu).unwrap();
    let dtb = bed.dump_dtb().unwrap();
    let kernel = zimage(a);
    let root = rootfs(bed.dir());
    let tag = format!("tftpboot-{}", arch.fit_name());
    let initrd = initramfs(a, &tag, TFTPBOOT_GUEST, &["loop", "squashfs"]);
    let mut spec = tftpboot_spec(&kernel, &dtb, &root, Some(&initrd), 0x4400_0000);
    spec.boot = boot;
    spec.arch = arch;
    let layout = tftpboot::write(&spec, bed.tftp_dir()).unwrap();
    // No `bootargs` in the environment: U-Boot would put it over the DTB's /chosen/bootargs.
    bed.set_env(&env(
        "tftp ${scriptaddr} boot.scr.uimg; source ${scriptaddr}",
        None,
    ))
    .unwrap();
    let serial = boot_to_userland(&bed, &tag);
    let cmdline = format!("LIMINIX-USERLAND {tag} cmdline={}", layout.command_line);
    assert!(serial.contains(&cmdline), "{cmdline:?} not in:\n{serial}");
    let reg = format!("{:016x}{:016x}", layout.rootfs_address, layout.phram_size);
    let node = format!("PHRAM-NODE compatible=phram reg={reg} no-map=yes");
    assert!(serial.contains(&node), "{node:?} not in:\n{serial}");
    assert!(
        serial.contains(&format!("ROOT-FILE {ROOT_TEXT}")),
        "{serial}"
    );
}

#[test]
fn the_tftpboot_output_boots_over_tftp_with_its_root_in_reserved_ram() {
    tftpboot_boots(Cpu::Arm, &armhf(), BootCommand::Bootz, Arch::Arm);
}

/// The same with `booti` on arm64: the qemu_arm64 U-Boot and Debian's arm64 Image.
#[test]
fn the_arm64_tftpboot_output_boots_with_booti() {
    tftpboot_boots(
        Cpu::Arm64,
        &arm64::assets().unwrap(),
        BootCommand::Booti,
        Arch::Arm64,
    );
}

#[test]
fn a_tftpboot_layout_under_the_decompressed_zimage_is_refused() {
    let a = armhf();
    let bed = NetBed::new().unwrap();
    let dtb = bed.dump_dtb().unwrap();
    let kernel = zimage(&a);
    let root = rootfs(bed.dir());
    let spec = tftpboot_spec(&kernel, &dtb, &root, None, 0x4010_0000);
    let err = tftpboot::write(&spec, bed.tftp_dir()).unwrap_err();
    assert!(
        matches!(
            &err,
            TftpbootError::Overlap {
                other: "root filesystem",
                start: 0x4000_8000,
                ..
            }
        ),
        "{err}"
    );
    assert!(std::fs::read_dir(bed.tftp_dir()).unwrap().next().is_none());
}

/// A FAT image of `root`'s `boot/` directory, whole-disk (no partition table).
fn fat_of(root: &Path, out: &Path) {
    let mkfs = std::process::Command::new("mkfs.vfat")
        .args(["-C", "-n", "LIMINIX"])
        .arg(out)
        .arg("32768")
        .status()
        .expect("mkfs.vfat (dosfstools)");
    assert!(mkfs.success());
    let copy = std::process::Command::new("mcopy")
        .args(["-s", "-i"])
        .arg(out)
        .arg(root.join("boot"))
        .arg("::")
        .status()
        .expect("mcopy (mtools)");
    assert!(copy.success());
}

#[test]
fn sysboot_boots_the_extlinux_boot_files() {
    let a = armhf();
    let mut bed = NetBed::new().unwrap();
    let dtb = bed.dump_dtb().unwrap();
    let kernel = zimage(&a);
    let root = bed.dir().join("root");
    std::fs::create_dir(&root).unwrap();
    let append = "console=ttyAMA0 panic=-1 root=/dev/liminix-test-root";
    let files = BootFiles::Extlinux {
        kernel: &kernel,
        dtb: Some(&dtb),
        append,
        label: "liminix",
    };
    bootfiles::add(&root, &files).unwrap();
    let disk = bed.dir().join("boot.img");
    fat_of(&root, &disk);
    bed.attach_disk(&disk);
    let env = [
        "bootdelay=0",
        "pxefile_addr_r=0x40300000",
        "kernel_addr_r=0x42000000",
        "fdt_addr_r=0x48000000",
        "ramdisk_addr_r=0x48400000",
        "bootcmd=virtio scan; sysboot virtio 0 any 0x40200000 /boot/extlinux/extlinux.conf; echo BOOT-FAILED",
    ]
    .join("\n");
    bed.set_env(&(env + "\n")).unwrap();
    let start = Instant::now();
    // No root filesystem is there to mount: the kernel starting with the append line is the end.
    let run = bed.boot("VFS: Unable to mount root fs", TIMEOUT).unwrap();
    eprintln!("extlinux: {:.1} s", start.elapsed().as_secs_f64());
    let s = &run.serial;
    assert!(s.contains("Retrieving file: /boot/kernel"), "{s}");
    assert!(s.contains("Retrieving file: /boot/dtb"), "{s}");
    assert!(s.contains(&format!("Kernel command line: {append}")), "{s}");
}

const PARTITION_SIZE: u64 = 0x80_0000;
/// The partition's RAM stand-in: clear of the load addresses and of U-Boot at the top of RAM.
const RAM_PARTITION: u64 = 0x5000_0000;

/// firmware.bin as the mtdimage output makes it: the kernel uImage padded to the erase block,
/// then the root filesystem padded to the erase block.
fn firmware(a: &debian::Assets, dir: &Path) -> Vec<u8> {
    let header = Header {
        name: "Liminix flash test".into(),
        arch: Arch::Arm,
        payload: Payload::Kernel,
        compression: Compression::None,
        load: KERNEL_LOAD,
        entry: KERNEL_LOAD,
        time: TIME,
    };
    let mut fw = uimage::write(&header, &zimage(a)).unwrap();
    let pad = |v: &mut Vec<u8>| {
        let len = (v.len() as u64).next_multiple_of(FLASH_SECTOR) as usize;
        v.resize(len, 0xFF);
    };
    pad(&mut fw);
    fw.extend(rootfs(dir));
    pad(&mut fw);
    fw
}

/// flash.scr run by U-Boot, with the partition on a RAM stand-in. QEMU 7.2's virt pflash
/// cannot be the partition: it accepts two CFI write-to-buffer operations per sector and then
/// leaves U-Boot's third hanging ("Flash buffer write timeout"), whatever writes the data, so
/// `cp.b` into it fails. In RAM, U-Boot's `erase` refuses the address (it is no flash) and
/// `cp.b` copies: the script's TFTP fetch, addresses and `${filesize}` are what is checked, by
/// U-Boot's own CRC-32 of the region against the file's.
#[test]
fn flash_scr_copies_firmware_bin_to_the_partition_address() {
    let a = armhf();
    let bed = NetBed::new().unwrap();
    let fw = firmware(&a, bed.dir());
    assert!(fw.len() as u64 <= PARTITION_SIZE);
    put(&bed, "firmware.bin", &fw);
    let text = commands::flash_scr_mtd(&MtdFlash {
        tftp: Tftp::default(),
        file: "firmware.bin".into(),
        load_address: FILE_ADDR.into(),
        flash_address: RAM_PARTITION,
        partition_size: PARTITION_SIZE,
        command_line: "console=ttyAMA0 it's; $quoted".into(),
    });
    put(
        &bed,
        "flash.scr",
        &script::write("flash", Arch::Arm, TIME, &text).unwrap(),
    );
    // Leftovers in the stand-in must be overwritten: it starts filled with 0x5a.
    let bootcmd = format!(
        "mw.b {RAM_PARTITION:#x} 0x5a {PARTITION_SIZE:#x}; tftp ${{scriptaddr}} flash.scr; \
         source ${{scriptaddr}}; crc32 {RAM_PARTITION:#x} {:#x}; echo FLASH-SCRIPT-END",
        fw.len()
    );
    bed.set_env(&env(&bootcmd, None)).unwrap();
    let start = Instant::now();
    let run = bed.boot("FLASH-SCRIPT-END", TIMEOUT).unwrap();
    eprintln!("flash.scr: {:.1} s", start.elapsed().as_secs_f64());
    let s = &run.serial;
    assert!(
        s.contains("command line was console=ttyAMA0 it's; $quoted"),
        "{s}"
    );
    let want = format!("==> {:08x}", crc32fast::hash(&fw));
    assert!(
        s.contains(&want),
        "expected CRC32 {want} of firmware.bin:\n{s}"
    );
}
