//! `liminix-pack image` over every built-in board: the outputs that call the U-Boot command,
//! TFTP boot, /boot files, UBIFS and Zyxel FIT writers, each checked by the reference tool —
//! `mkimage -l` and `unsquashfs -s` on firmware.bin and its squashfs at the erase-block offset,
//! `ubireader_display_info`/`ubireader_extract_files` on the UBIFS root and the UBI image,
//! `dumpimage -l` on the Zyxel FIT and the boot script image, `debugfs` on the Omnia stick's
//! ext4, `liminix-pack verify` on the bundles; every board built twice gives the same bytes.

#[path = "image_command/common.rs"]
mod common;

use std::path::{Path, PathBuf};

use common::*;
use liminix_boards::{Cpu, KernelFormat};

/// A kernel input each board's `[boot]` takes: an ELF at the load address for uImage boards
/// (and the Zyxel FIT), an Image for the arm64 FIT boards, a zImage or Image as built.
fn kernel_for(dir: &Path, name: &str) -> PathBuf {
    let b = liminix_boards::builtin(name).unwrap();
    let boot = b.boot.unwrap();
    match (boot.kernel_format, b.cpu.unwrap()) {
        (KernelFormat::Zimage, _) => arm_zimage(dir),
        (KernelFormat::Image, _) | (KernelFormat::Fit, Cpu::Aarch64) => arm64_image(dir),
        (_, Cpu::Mips) => elf_kernel(dir, "mips-linux-gnu", boot.load_address),
        (_, _) => elf_kernel(dir, "mipsel-linux-gnu", boot.load_address),
    }
}

fn build(dir: &Path, name: &str, out: &Path, extra: &[&str]) {
    let (k, d) = (kernel_for(dir, name), dtb(dir));
    let root = dir.join("root");
    if !root.exists() {
        root_tree(dir);
    }
    let mut args = vec!["--board", name, "--kernel", p(&k), "--dtb", p(&d)];
    args.extend(["--root", p(&root), "--out", p(out)]);
    args.extend(extra);
    image(&args);
}

fn names() -> Vec<&'static str> {
    liminix_boards::EMBEDDED.iter().map(|(n, _)| *n).collect()
}

#[test]
fn every_built_in_board_builds_each_of_its_outputs() {
    for name in names() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        build(
            t.path(),
            name,
            &out,
            &["--serverip", "10.0.2.2", "--ipaddr", "10.0.2.15"],
        );
        let board = liminix_boards::builtin(name).unwrap();
        for o in board.outputs.iter().filter(|o| !o.is_boot_files()) {
            let dir = out.join(o.name());
            assert!(
                std::fs::read_dir(&dir).unwrap().count() > 0,
                "{name} {}",
                o.name()
            );
            check(t.path(), name, o.name(), &dir);
        }
    }
}

fn check(tmp: &Path, board: &str, output: &str, dir: &Path) {
    match output {
        "mtdimage" => firmware(tmp, board, dir),
        "ubimage" => ubifs_root(tmp, dir),
        "ubivolume" => {
            let shown = text("ubireader_display_info", &[p(&dir.join("ubi.img"))]);
            assert!(shown.contains("flags: 'autoresize'"), "{board}: {shown}");
        }
        "zyxel-nwa-fit" => {
            let listed = text("dumpimage", &["-l", p(&dir.join("firmware.itb"))]);
            assert!(listed.contains("Firmware"), "{board}: {listed}");
            text("ubireader_display_info", &[p(&dir.join("rootfs"))]);
        }
        "tftpboot" => {
            let listed = text("dumpimage", &["-l", p(&dir.join("boot.scr.uimg"))]);
            assert!(listed.contains("Script"), "{board}: {listed}");
        }
        "mbrimage" => {
            let disk = dir.join("disk.img");
            let dump = text("sfdisk", &["--dump", p(&disk)]);
            assert!(dump.contains("start=        2048"), "{board}: {dump}");
            extlinux_on_stick(tmp, &disk);
        }
        _ => {}
    }
}

fn firmware(tmp: &Path, board: &str, dir: &Path) {
    let fw = dir.join("firmware.bin");
    let bytes = std::fs::read(&fw).unwrap();
    // mkimage checks the data CRC over the rest of the file, so it lists the uImage alone: the
    // first erase block is that uImage, then erased-flash padding.
    let kernel = dir.parent().unwrap().join("kernel/kernel.uimage");
    let uimage = std::fs::read(&kernel).unwrap();
    assert_eq!(&bytes[..uimage.len()], &uimage[..], "{board}");
    assert!(
        bytes[uimage.len()..0x10000].iter().all(|&b| b == 0xff),
        "{board}"
    );
    let listed = text("mkimage", &["-l", p(&kernel)]);
    assert!(listed.contains("lzma compressed"), "{board}: {listed}");
    let sq = tmp.join("rootfs.squashfs");
    std::fs::write(&sq, &bytes[0x10000..]).unwrap();
    assert!(text("unsquashfs", &["-s", p(&sq)]).contains("Compression xz"));
    assert!(text("unsquashfs", &["-l", p(&sq)]).contains("squashfs-root/etc/motd"));
    let b = liminix_boards::builtin(board).unwrap().boot.unwrap();
    let scr = std::fs::read_to_string(dir.join("flash.scr")).unwrap();
    let flash = format!("{:#x}", b.flash_address.unwrap());
    assert!(
        scr.contains(&flash) && scr.contains("firmware.bin"),
        "{board}: {scr}"
    );
    let info = inspect_json(&fw);
    assert_eq!(
        (info["kind"].as_str(), info["erase_block"].as_u64()),
        (Some("firmware"), Some(0x10000))
    );
}

fn ubifs_root(tmp: &Path, dir: &Path) {
    let shown = text("ubireader_display_info", &[p(&dir.join("rootfs"))]);
    assert!(shown.contains("LEB Size: 126976"), "{shown}");
    let x = tmp.join("extracted");
    run(
        "ubireader_extract_files",
        &["-o", p(&x), p(&dir.join("rootfs"))],
    );
    let kernel = dir.parent().unwrap().join("kernel/kernel.itb");
    assert_eq!(
        std::fs::read(x.join("boot/fit")).unwrap(),
        std::fs::read(kernel).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(x.join("etc/motd")).unwrap(),
        "hello from liminix\n"
    );
}

fn extlinux_on_stick(tmp: &Path, disk: &Path) {
    let bytes = std::fs::read(disk).unwrap();
    let part = tmp.join("part1.ext4");
    std::fs::write(&part, &bytes[2048 * 512..]).unwrap();
    let conf = text(
        "debugfs",
        &["-R", "cat /boot/extlinux/extlinux.conf", p(&part)],
    );
    assert!(conf.contains("rootflags=subvol=@"), "{conf}");
}

#[test]
fn every_built_in_board_builds_the_same_bytes_twice() {
    for name in names() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        build(t.path(), name, &a, &[]);
        build(t.path(), name, &b, &[]);
        let (fa, fb) = (files(&a), files(&b));
        assert_eq!(fa.len(), fb.len(), "{name}");
        for ((na, da), (nb, db)) in fa.iter().zip(&fb) {
            assert_eq!(na, nb, "{name}");
            assert!(da == db, "{name}: {na} differs between two builds");
        }
    }
}

#[test]
fn the_bundle_carries_the_images_the_board_lists_and_verifies() {
    for (name, images) in [
        ("gl-ar750", vec![("firmware", "mtdimage/firmware.bin")]),
        ("belkin-rt3200", vec![("rootfs", "ubimage/rootfs")]),
        (
            "zyxel-nwa50ax",
            vec![
                ("kernel", "zyxel-nwa-fit/kernel"),
                ("rootfs", "zyxel-nwa-fit/rootfs"),
            ],
        ),
    ] {
        let t = tempfile::tempdir().unwrap();
        let (sec, public) = (t.path().join("k.sec"), t.path().join("k.pub"));
        let o = pack()
            .args(["keygen", "--secret", p(&sec), "--public", p(&public)])
            .output()
            .unwrap();
        assert!(o.status.success());
        let out = t.path().join("out");
        build(t.path(), name, &out, &["--bundle", "--key", p(&sec)]);
        let bundle = out.join("bundle");
        let o = pack()
            .args(["verify", "--trust", p(&public), p(&bundle)])
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let m = &inspect_json(&bundle)["manifest"];
        let listed = m["images"].as_array().unwrap();
        assert_eq!(listed.len(), images.len(), "{name}");
        for (i, (image, file)) in listed.iter().zip(images) {
            assert_eq!(i["name"], image);
            let bytes = std::fs::read(out.join(file)).unwrap();
            assert_eq!(
                i["size"].as_u64(),
                Some(bytes.len() as u64),
                "{name} {image}"
            );
        }
    }
}

#[test]
fn a_zyxel_kernel_larger_than_its_8_mib_half_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let k = t.path().join("kernel.bin");
    std::fs::write(&k, liminix_testdata::pattern(8, 9 << 20)).unwrap();
    let (root, d) = (root_tree(t.path()), dtb(t.path()));
    let out = t.path().join("out");
    let o = pack()
        .args([
            "image",
            "--board",
            "zyxel-nwa50ax",
            "--kernel",
            p(&k),
            "--dtb",
            p(&d),
        ])
        .args(["--root", p(&root), "--out", p(&out)])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("zyxel-nwa-fit: the kernel FIT is"), "{e}");
    assert!(
        e.contains("but the kernel half (kernel) holds 8388608 bytes"),
        "{e}"
    );
    assert!(!out.exists());
}
