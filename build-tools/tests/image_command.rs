//! `liminix-pack image` and `inspect` on the outputs whose writers are this packer's own (kernel,
//! disk, UBI image, size refusals, reproducibility), each checked by the reference tool:
//! `objcopy -O binary` and `readelf` for the vmlinux flattening, `mkimage -l`/`dumpimage` and
//! `lzma` for the uImage, `dumpimage`/`fdtget` for the FIT and its DTB, `sfdisk --json` and
//! `unsquashfs` for the disk, `ubireader_display_info` for the UBI image, `liminix-pack verify`
//! for the bundle. The outputs that call the U-Boot script, TFTP, /boot, UBIFS and Zyxel writers
//! are in image_command_shared.rs.

#[path = "image_command/common.rs"]
mod common;

use common::*;
use liminix_build_tools::image::elf;

const MIPS_KERNEL: &str = r#"
name = "t-mips"
strategy = "raw"
cpu = "mips"
[boot]
kernel_format = "uimage"
compression = "lzma"
load_address = 0x80060000
entry_point = 0x80060000
command_line = "console=ttyS0,115200"
root_device = "/dev/mtdblock5"
root_fs = "squashfs"
[[output]]
type = "kernel"
"#;

const ARM64_FIT: &str = r#"
name = "t-fit"
strategy = "raw"
cpu = "aarch64"
[boot]
kernel_format = "fit"
compression = "gzip"
load_address = 0x44000000
entry_point = 0x44000000
command_line = "console=ttyAMA0,38400"
root_device = "/dev/vda1"
root_fs = "squashfs"
[[output]]
type = "kernel"
"#;

/// An ARMv7 disk board (kernel and MBR disk) with no images: closure updates only.
const DISK: &str = r#"
name = "t-disk"
strategy = "raw"
cpu = "armv7"
[boot]
kernel_format = "zimage"
load_address = 0x800000
entry_point = 0x800000
command_line = "console=ttyS0,115200"
root_device = "/dev/sda1"
root_fs = "squashfs"
[[output]]
type = "kernel"
[[output]]
type = "mbrimage"
disk_size = 0x4000000
free_space = 0x800000
"#;

const UBI: &str = r#"
name = "t-ubi"
strategy = "ubi"
cpu = "mipsel"
[[flash]]
name = "nand"
type = "nand"
size = 0x8000000
erase_size = 0x20000
write_size = 2048
  [[flash.partition]]
  name = "ubi"
  offset = 0x0
  size = 0x400000
[ubi]
partition = "ubi"
min_io = 2048
leb_size = 126976
peb_size = 131072
  [[ubi.volume]]
  name = "rootfs"
[[image]]
name = "rootfs"
target = "ubi:rootfs"
[boot]
kernel_format = "uimage"
compression = "lzma"
load_address = 0x80001000
entry_point = 0x80001000
root_device = "/dev/ubiblock0_0"
root_fs = "squashfs"
[[output]]
type = "ubivolume"
partition = "ubi"
volume = "rootfs"
autoresize = true
"#;

#[test]
fn vmlinux_flattens_as_objcopy_does() {
    let t = tempfile::tempdir().unwrap();
    for (prefix, at) in [
        ("mips-linux-gnu", 0x8006_0000),
        ("mipsel-linux-gnu", 0x8000_1000),
        ("arm-linux-gnueabihf", 0x0080_0000),
    ] {
        let k = elf_kernel(t.path(), prefix, at);
        let flat = elf::flatten(&std::fs::read(&k).unwrap()).unwrap();
        assert_eq!(flat.data, objcopy_binary(t.path(), prefix, &k), "{prefix}");
        assert_eq!(flat.entry, readelf_entry(&k), "{prefix}");
        assert_eq!((flat.base_paddr, flat.base_vaddr), (at, at), "{prefix}");
        // The data page comes after a zero-filled gap; bss is not in the file.
        assert!(
            flat.data.len() > 0x1000 && flat.data.len() < 0x1100,
            "{prefix}"
        );
    }
    let e = elf::flatten(b"\x7fELF\x01").unwrap_err();
    assert!(e.to_string().contains("byte order"), "{e}");
}

#[test]
fn a_uimage_kernel_is_the_objcopy_payload_with_the_board_s_addresses() {
    let t = tempfile::tempdir().unwrap();
    let k = elf_kernel(t.path(), "mips-linux-gnu", 0x8006_0000);
    let board = board_file(t.path(), "t-mips", MIPS_KERNEL);
    let (root, out) = (root_tree(t.path()), t.path().join("out"));
    image(&[
        "--board-file",
        p(&board),
        "--kernel",
        p(&k),
        "--root",
        p(&root),
        "--out",
        p(&out),
    ]);
    let uimage = out.join("kernel/kernel.uimage");
    let listed = text("mkimage", &["-l", p(&uimage)]);
    for want in [
        "MIPS Liminix Linux",
        "MIPS Linux Kernel Image (lzma compressed)",
        "Load Address: 80060000",
        "Entry Point:  80060000",
    ] {
        assert!(listed.contains(want), "{want}: {listed}");
    }
    let payload = t.path().join("payload.lzma");
    run(
        "dumpimage",
        &["-T", "kernel", "-p", "0", "-o", p(&payload), p(&uimage)],
    );
    let unpacked = run("lzma", &["-dc", p(&payload)]);
    assert_eq!(unpacked, objcopy_binary(t.path(), "mips-linux-gnu", &k));
    let info = inspect_json(&uimage);
    assert_eq!(info["load"], "0x80060000");
    assert_eq!(info["compression"], "lzma");
}

#[test]
fn a_vmlinux_linked_elsewhere_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let k = elf_kernel(t.path(), "mips-linux-gnu", 0x8010_0000);
    let board = board_file(t.path(), "t-mips", MIPS_KERNEL);
    let (root, out) = (root_tree(t.path()), t.path().join("out"));
    let o = pack()
        .args(["image", "--board-file", p(&board), "--kernel", p(&k)])
        .args(["--root", p(&root), "--out", p(&out)])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o)
            .contains("linked to run at 0x80100000 but the board loads the kernel at 0x80060000"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn a_fit_kernel_carries_the_dtb_with_the_command_line_in_chosen() {
    let t = tempfile::tempdir().unwrap();
    let (k, dtb) = (arm64_image(t.path()), dtb(t.path()));
    let board = board_file(t.path(), "t-fit", ARM64_FIT);
    let (root, out) = (root_tree(t.path()), t.path().join("out"));
    image(
        &[
            "--board-file",
            p(&board),
            "--kernel",
            p(&k),
            "--dtb",
            p(&dtb),
        ]
        .into_iter()
        .chain([
            "--root",
            p(&root),
            "--out",
            p(&out),
            "--command-line",
            "console=ttyAMA0 quiet",
        ])
        .collect::<Vec<_>>(),
    );
    let fit = out.join("kernel/kernel.itb");
    let listed = text("dumpimage", &["-l", p(&fit)]);
    assert!(listed.contains("Load Address: 0x44000000"), "{listed}");
    assert!(listed.contains("gzip compressed"), "{listed}");
    let fdt = t.path().join("fdt");
    run(
        "dumpimage",
        &["-T", "flat_dt", "-p", "1", "-o", p(&fdt), p(&fit)],
    );
    let bootargs = text("fdtget", &[p(&fdt), "/chosen", "bootargs"]);
    assert_eq!(
        bootargs.trim(),
        "panic=10 oops=panic init=/bin/init loglevel=8 root=/dev/vda1 rootfstype=squashfs fw_devlink=off console=ttyAMA0 quiet"
    );
    assert_eq!(
        text("fdtget", &[p(&fdt), "/", "compatible"]).trim(),
        "test,board"
    );
    let kernel = t.path().join("kernel.gz");
    run(
        "dumpimage",
        &["-T", "flat_dt", "-p", "0", "-o", p(&kernel), p(&fit)],
    );
    assert_eq!(
        run("gzip", &["-dc", p(&kernel)]),
        std::fs::read(&k).unwrap()
    );
    let info = inspect_json(&fit);
    assert_eq!(info["kind"], "fit");
    assert_eq!(info["images"][0]["load"], "0x44000000");
    assert_eq!(info["images"][1]["type"], "flat_dt");
}

fn partition_of(
    disk: &std::path::Path,
    dir: &std::path::Path,
) -> (std::path::PathBuf, serde_json::Value) {
    let table: serde_json::Value =
        serde_json::from_slice(&run("sfdisk", &["--json", p(disk)])).unwrap();
    let part = table["partitiontable"]["partitions"][0].clone();
    let (start, size) = (
        part["start"].as_u64().unwrap(),
        part["size"].as_u64().unwrap(),
    );
    let bytes = std::fs::read(disk).unwrap();
    let out = dir.join("part1.img");
    std::fs::write(
        &out,
        &bytes[(start * 512) as usize..((start + size) * 512) as usize],
    )
    .unwrap();
    (out, part)
}

#[test]
fn the_disk_image_holds_the_squashfs_root_with_room_after_it() {
    let t = tempfile::tempdir().unwrap();
    let k = arm_zimage(t.path());
    let board = board_file(t.path(), "t-disk", DISK);
    let (root, out) = (root_tree(t.path()), t.path().join("out"));
    image(&[
        "--board-file",
        p(&board),
        "--kernel",
        p(&k),
        "--root",
        p(&root),
        "--out",
        p(&out),
    ]);
    assert_eq!(
        std::fs::read(out.join("kernel/zImage")).unwrap(),
        std::fs::read(&k).unwrap()
    );
    let disk = out.join("mbrimage/disk.img");
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 0x400_0000);
    let (part, entry) = partition_of(&disk, t.path());
    assert_eq!(entry["start"], 2048);
    assert_eq!(entry["bootable"], true);
    let squashfs_len =
        u64::from_le_bytes(std::fs::read(&part).unwrap()[40..48].try_into().unwrap());
    assert!(entry["size"].as_u64().unwrap() * 512 >= squashfs_len + 0x80_0000);
    let listing = text("unsquashfs", &["-lls", p(&part)]);
    for want in [
        "squashfs-root/etc/motd",
        "squashfs-root/bin/sh -> /bin/busybox",
        "squashfs-root/var/empty",
    ] {
        assert!(listing.contains(want), "{want}: {listing}");
    }
    assert!(text("unsquashfs", &["-s", p(&part)]).contains("Tue Nov 14 22:13:20 2023"));
    let info = inspect_json(&disk);
    assert_eq!(info["partitions"][0]["start"], 2048);
}

#[test]
fn the_ubi_image_is_read_by_ubi_reader_with_an_autoresize_root_volume() {
    let t = tempfile::tempdir().unwrap();
    let k = elf_kernel(t.path(), "mipsel-linux-gnu", 0x8000_1000);
    let board = board_file(t.path(), "t-ubi", UBI);
    let (root, out) = (root_tree(t.path()), t.path().join("out"));
    image(&[
        "--board-file",
        p(&board),
        "--kernel",
        p(&k),
        "--root",
        p(&root),
        "--out",
        p(&out),
    ]);
    let ubi = out.join("ubivolume/ubi.img");
    let shown = text("ubireader_display_info", &[p(&ubi)]);
    for want in [
        "PEB Size: 131072",
        "Min I/O: 2048",
        "name: 'rootfs'",
        "flags: 'autoresize'",
        "vol_type: 'dynamic'",
    ] {
        assert!(shown.contains(want), "{want}: {shown}");
    }
    let info = inspect_json(&ubi);
    assert_eq!(info["volumes"][0]["name"], "rootfs");
    assert_eq!(info["volumes"][0]["autoresize"], true);
}

#[test]
fn a_ubi_image_larger_than_its_partition_is_refused_with_the_numbers() {
    let t = tempfile::tempdir().unwrap();
    let k = elf_kernel(t.path(), "mipsel-linux-gnu", 0x8000_1000);
    let board = board_file(t.path(), "t-ubi", UBI);
    let root = root_tree(t.path());
    std::fs::write(root.join("bin/big"), liminix_testdata::pattern(9, 5 << 20)).unwrap();
    let out = t.path().join("out");
    let o = pack()
        .args(["image", "--board-file", p(&board), "--kernel", p(&k)])
        .args(["--root", p(&root), "--out", p(&out)])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("ubivolume: the UBI image is"), "{e}");
    assert!(e.contains("partition ubi holds 4194304 bytes"), "{e}");
    assert!(!out.exists());
}

#[test]
fn a_root_too_big_for_the_gl_ar750_firmware_partition_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let k = elf_kernel(t.path(), "mips-linux-gnu", 0x8006_0000);
    let (root, dtb) = (root_tree(t.path()), dtb(t.path()));
    // Incompressible, so the squashfs is as big: 16.5 MB against the 16 000 KiB partition.
    std::fs::write(
        root.join("bin/big"),
        liminix_testdata::pattern(3, 16_500_000),
    )
    .unwrap();
    let out = t.path().join("out");
    let o = pack()
        .args([
            "image",
            "--board",
            "gl-ar750",
            "--kernel",
            p(&k),
            "--dtb",
            p(&dtb),
        ])
        .args(["--root", p(&root), "--out", p(&out)])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    let (_, rest) = e.split_once("mtdimage: firmware.bin is ").expect(&e);
    let (size, rest) = rest
        .split_once(" bytes but partition firmware holds 16384000 bytes (")
        .expect(&e);
    let (over, _) = rest.split_once(" bytes too many)").expect(&e);
    let (size, over): (u64, u64) = (size.parse().unwrap(), over.parse().unwrap());
    assert_eq!(size - 16_384_000, over);
    assert_eq!(
        size % 0x10000,
        0,
        "kernel and root are padded to the erase block"
    );
    assert!(!out.exists(), "nothing is left behind");
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let t = tempfile::tempdir().unwrap();
    let k = arm_zimage(t.path());
    let ext4_disk = DISK.replace(
        "type = \"mbrimage\"",
        "type = \"mbrimage\"\nfilesystem = \"ext4\"",
    );
    let board = board_file(t.path(), "t-disk", &ext4_disk);
    let root = root_tree(t.path());
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    image(&[
        "--board-file",
        p(&board),
        "--kernel",
        p(&k),
        "--root",
        p(&root),
        "--out",
        p(&a),
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(root.join("etc/motd"), "hello from liminix\n").unwrap();
    image(&[
        "--board-file",
        p(&board),
        "--kernel",
        p(&k),
        "--root",
        p(&root),
        "--out",
        p(&b),
    ]);
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa.len(), 2);
    for ((na, da), (nb, db)) in fa.iter().zip(&fb) {
        assert_eq!(na, nb);
        assert!(da == db, "{na} differs between two builds");
    }
    let (part, _) = partition_of(&a.join("mbrimage/disk.img"), t.path());
    let listing = text("debugfs", &["-R", "cat /etc/motd", p(&part)]);
    assert_eq!(listing, "hello from liminix\n");
    run("e2fsck", &["-fn", p(&part)]);
    let uimage_board = board_file(t.path(), "t-mips", MIPS_KERNEL);
    let mips = elf_kernel(t.path(), "mips-linux-gnu", 0x8006_0000);
    let (c, d) = (t.path().join("c"), t.path().join("d"));
    for out in [&c, &d] {
        image(&[
            "--board-file",
            p(&uimage_board),
            "--kernel",
            p(&mips),
            "--root",
            p(&root),
            "--out",
            p(out),
        ]);
    }
    assert_eq!(files(&c), files(&d));
}

#[test]
fn a_toplevel_root_is_laid_out_as_liminix_does_and_bundled_for_closure_boards() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let closure =
        liminix_tests::closure::generate(&store, &liminix_tests::closure::ClosureSpec::small(4))
            .unwrap();
    let (sec, public) = (t.path().join("k.sec"), t.path().join("k.pub"));
    let o = pack()
        .args(["keygen", "--secret", p(&sec), "--public", p(&public)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let k = arm_zimage(t.path());
    let board = board_file(t.path(), "t-disk", DISK);
    let out = t.path().join("out");
    let o = image(
        &[
            "--board-file",
            p(&board),
            "--kernel",
            p(&k),
            "--root",
            &closure.toplevel,
        ]
        .into_iter()
        .chain([
            "--store-root",
            p(&store),
            "--out",
            p(&out),
            "--bundle",
            "--key",
            p(&sec),
            "--json",
        ])
        .collect::<Vec<_>>(),
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<_> = summary["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].clone())
        .collect();
    assert_eq!(names, ["kernel", "mbrimage", "bundle"]);
    let (part, _) = partition_of(&out.join("mbrimage/disk.img"), t.path());
    let listing = text("unsquashfs", &["-lls", p(&part)]);
    for path in &closure.paths {
        assert!(listing.contains(&format!("squashfs-root{path}")), "{path}");
    }
    let init = format!("squashfs-root/init -> {}/bin/init", closure.toplevel);
    for want in [
        init.as_str(),
        "squashfs-root/activate\n",
        "squashfs-root/secrets\n",
        "squashfs-root/boot\n",
    ] {
        assert!(listing.contains(want), "{want}: {listing}");
    }
    let bundle = out.join("bundle");
    let o = pack()
        .args(["verify", "--trust", p(&public), p(&bundle)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let info = inspect_json(&bundle);
    assert_eq!(
        info["manifest"]["generation"]["toplevel"],
        closure.toplevel.as_str()
    );
}

#[test]
fn a_ready_root_image_is_used_as_it_is_and_refused_where_it_cannot_serve() {
    let t = tempfile::tempdir().unwrap();
    let k = arm_zimage(t.path());
    let root = root_tree(t.path());
    let ready = t.path().join("root.squashfs");
    run(
        "mksquashfs",
        &[p(&root), p(&ready), "-noappend", "-quiet", "-no-progress"],
    );
    let board = board_file(t.path(), "t-disk", DISK);
    let out = t.path().join("out");
    image(&[
        "--board-file",
        p(&board),
        "--kernel",
        p(&k),
        "--root",
        p(&ready),
        "--out",
        p(&out),
    ]);
    let (part, _) = partition_of(&out.join("mbrimage/disk.img"), t.path());
    let image_bytes = std::fs::read(&ready).unwrap();
    assert_eq!(
        &std::fs::read(&part).unwrap()[..image_bytes.len()],
        &image_bytes[..]
    );
    for (board_text, want) in [
        (
            DISK.replace(
                "type = \"mbrimage\"",
                "type = \"mbrimage\"\nfilesystem = \"ext4\"",
            ),
            "is a squashfs image but this output needs ext4",
        ),
        (
            DISK.to_owned() + "[[output]]\ntype = \"extlinux\"\n",
            "output extlinux: a ready root image cannot get /boot files",
        ),
    ] {
        let board = board_file(t.path(), "t-disk", &board_text);
        let out = t.path().join("refused");
        let o = pack()
            .args(["image", "--board-file", p(&board), "--kernel", p(&k)])
            .args(["--root", p(&ready), "--out", p(&out)])
            .output()
            .unwrap();
        assert!(!o.status.success());
        assert!(stderr(&o).contains(want), "{want}: {}", stderr(&o));
        assert!(!out.exists());
    }
    let junk = t.path().join("junk.img");
    std::fs::write(&junk, b"not a filesystem").unwrap();
    let o = pack()
        .args(["image", "--board-file", p(&board), "--kernel", p(&k)])
        .args(["--root", p(&junk), "--out", p(&out)])
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("is neither a directory, a store path, a squashfs nor a UBIFS image"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_uimage_kernel_gets_the_dtb_in_its_appended_dtb_section() {
    let t = tempfile::tempdir().unwrap();
    let k = elf_kernel_with(t.path(), "mips-linux-gnu", 0x8006_0000, APPENDED_DTB_C);
    let sections = text("readelf", &["-SW", p(&k)]);
    let line = sections
        .lines()
        .find(|l| l.contains(".appended_dtb"))
        .expect(&sections);
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields.iter().position(|f| *f == ".appended_dtb").unwrap();
    assert_eq!(fields[at + 1], "PROGBITS", "{line}");
    let addr = usize::from_str_radix(fields[at + 2], 16).unwrap() - 0x8006_0000;
    let size = usize::from_str_radix(fields[at + 4], 16).unwrap();
    let (board, dtb) = (board_file(t.path(), "t-mips", MIPS_KERNEL), dtb(t.path()));
    let (root, out) = (root_tree(t.path()), t.path().join("out"));
    image(&[
        "--board-file",
        p(&board),
        "--kernel",
        p(&k),
        "--dtb",
        p(&dtb),
        "--root",
        p(&root),
        "--out",
        p(&out),
    ]);
    let payload = t.path().join("payload.lzma");
    let uimage = out.join("kernel/kernel.uimage");
    run(
        "dumpimage",
        &["-T", "kernel", "-p", "0", "-o", p(&payload), p(&uimage)],
    );
    let ours = run("lzma", &["-dc", p(&payload)]);
    let plain = objcopy_binary(t.path(), "mips-linux-gnu", &k);
    assert_eq!(ours.len(), plain.len());
    assert_eq!(ours[..addr], plain[..addr]);
    assert_eq!(ours[addr + size..], plain[addr + size..]);
    let fdt = t.path().join("appended.dtb");
    std::fs::write(&fdt, &ours[addr..addr + size]).unwrap();
    let bootargs = text("fdtget", &[p(&fdt), "/chosen", "bootargs"]);
    assert!(
        bootargs.starts_with("panic=10 oops=panic init=/bin/init loglevel=8 root=/dev/mtdblock5"),
        "{bootargs}"
    );
    assert!(
        bootargs.trim_end().ends_with("console=ttyS0,115200"),
        "{bootargs}"
    );
}
