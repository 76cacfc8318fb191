//! The uImage, script and FIT writers against U-Boot's own tools: mkimage builds the same
//! legacy images byte for byte, `mkimage -l` reads every field back, dumpimage extracts the
//! payloads unchanged, fdtget reads the FIT properties, and xz decodes the lzma payload.

use std::path::{Path, PathBuf};
use std::process::Command;

use liminix_build_tools::image::{self, fit, script, uimage, Arch, Compression, Payload};

const EPOCH: u32 = 1_700_000_000;

/// A kernel stand-in that compresses a little, like a real one: text runs between noise.
fn kernel_bytes() -> Vec<u8> {
    let mut k = Vec::new();
    for i in 0..64u64 {
        k.extend_from_slice(&liminix_testdata::pattern(i, 1024));
        k.extend_from_slice(&[b'L'; 3000]);
    }
    k
}

/// Runs a tool; a missing tool or a failure fails the test with the tool's own words.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tool output is UTF-8")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn mkimage(epoch: u32) -> Command {
    let mut c = Command::new("mkimage");
    c.env("SOURCE_DATE_EPOCH", epoch.to_string());
    c
}

fn kernel_header(arch: Arch, compression: Compression) -> uimage::Header {
    uimage::Header {
        name: "Liminix kernel".into(),
        arch,
        payload: Payload::Kernel,
        compression,
        load: 0x8006_0000,
        entry: 0x8006_0400,
        time: EPOCH,
    }
}

/// mkimage's legacy kernel image of `input` in `dir`, with the addresses and name that
/// `kernel_header` gives ours.
fn mkimage_kernel(dir: &Path, arch: &str, compression: &str, input: &Path) -> PathBuf {
    let theirs = dir.join("theirs.uimage");
    run(mkimage(EPOCH)
        .args(["-A", arch, "-O", "linux", "-T", "kernel", "-C", compression])
        .args(["-a", "0x80060000", "-e", "0x80060400"])
        .args(["-n", "Liminix kernel", "-d"])
        .args([input, &theirs]));
    theirs
}

fn legacy_matches_mkimage(arch: Arch, a: &str, compression: Compression, c: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = image::compress(&kernel_bytes(), compression).unwrap();
    let ours = uimage::write(&kernel_header(arch, compression), &data).unwrap();
    let input = write(dir.path(), "payload", &data);
    let theirs = mkimage_kernel(dir.path(), a, c, &input);
    assert!(
        std::fs::read(&theirs).unwrap() == ours,
        "{a} {c}: our uImage differs from mkimage's"
    );
}

#[test]
fn legacy_kernel_is_byte_equal_to_mkimage() {
    legacy_matches_mkimage(Arch::Mips, "mips", Compression::Lzma, "lzma");
    legacy_matches_mkimage(Arch::Mips, "mips", Compression::None, "none");
    legacy_matches_mkimage(Arch::Arm, "arm", Compression::None, "none");
    legacy_matches_mkimage(Arch::Arm, "arm", Compression::Gzip, "gzip");
    legacy_matches_mkimage(Arch::Arm64, "arm64", Compression::Lzma, "lzma");
}

#[test]
fn mkimage_lists_the_legacy_fields() {
    let dir = tempfile::tempdir().unwrap();
    let data = image::compress(&kernel_bytes(), Compression::Lzma).unwrap();
    let img = uimage::write(&kernel_header(Arch::Mips, Compression::Lzma), &data).unwrap();
    let path = write(dir.path(), "k.uimage", &img);
    let listing = run(Command::new("mkimage").arg("-l").arg(&path));
    for want in [
        "Image Name:   Liminix kernel",
        "Image Type:   MIPS Linux Kernel Image (lzma compressed)",
        &format!("Data Size:    {} Bytes", data.len()),
        "Load Address: 80060000",
        "Entry Point:  80060400",
    ] {
        assert!(listing.contains(want), "no {want:?} in:\n{listing}");
    }
}

#[test]
fn lzma_payload_decodes_with_xz() {
    let dir = tempfile::tempdir().unwrap();
    let raw = kernel_bytes();
    let packed = image::compress(&raw, Compression::Lzma).unwrap();
    assert!(packed.len() < raw.len() / 2, "lzma did not compress");
    let path = write(dir.path(), "k.lzma", &packed);
    let out = Command::new("xz")
        .args(["--format=lzma", "--decompress", "--stdout"])
        .arg(&path)
        .output()
        .expect("xz runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == raw, "xz decoded other bytes");
}

#[test]
fn dumpimage_extracts_the_legacy_payload() {
    let dir = tempfile::tempdir().unwrap();
    let data = image::compress(&kernel_bytes(), Compression::Gzip).unwrap();
    let img = uimage::write(&kernel_header(Arch::Arm, Compression::Gzip), &data).unwrap();
    let path = write(dir.path(), "k.uimage", &img);
    let out = dir.path().join("extracted");
    run(Command::new("dumpimage")
        .args(["-T", "kernel", "-p", "0", "-o"])
        .args([&out, &path]));
    assert!(
        std::fs::read(&out).unwrap() == data,
        "extracted payload differs"
    );
}

const FLASH_SCR: &str = "tftpboot 0x81000000 firmware.bin\nerase 0x9f050000 +0x7b0000\n\
                         cp.b 0x81000000 0x9f050000 ${filesize}\n";

#[test]
fn script_is_byte_equal_to_mkimage() {
    let dir = tempfile::tempdir().unwrap();
    let ours = script::write("flash", Arch::Mips, EPOCH, FLASH_SCR).unwrap();
    let input = write(dir.path(), "flash.cmd", FLASH_SCR.as_bytes());
    let theirs = dir.path().join("flash.scr");
    run(mkimage(EPOCH)
        .args([
            "-A", "mips", "-O", "linux", "-T", "script", "-C", "none", "-n", "flash", "-d",
        ])
        .args([&input, &theirs]));
    assert!(
        std::fs::read(&theirs).unwrap() == ours,
        "script image differs from mkimage's"
    );
    let listing = run(Command::new("mkimage").arg("-l").arg(&theirs));
    assert!(
        listing.contains("Image Type:   MIPS Linux Script (uncompressed)"),
        "{listing}"
    );
}

#[test]
fn same_epoch_gives_same_bytes() {
    let build = || {
        let data = image::compress(&kernel_bytes(), Compression::Lzma).unwrap();
        let time = image::timestamp_from(Some(EPOCH.to_string())).unwrap();
        let header = uimage::Header {
            time,
            ..kernel_header(Arch::Mips, Compression::Lzma)
        };
        let fdt = [0u8; 4];
        let hashes = [fit::Hash::Sha256];
        let f = fit_of(&data, &fdt, time, &hashes);
        let gz = image::compress(&kernel_bytes(), Compression::Gzip).unwrap();
        let scr = script::write("boot", Arch::Arm, time, FLASH_SCR).unwrap();
        (
            uimage::write(&header, &data).unwrap(),
            fit::write(&f).unwrap(),
            gz,
            scr,
        )
    };
    assert!(build() == build(), "two builds differ");
}

#[test]
fn bad_epoch_is_refused() {
    let err = image::timestamp_from(Some("yesterday".into())).unwrap_err();
    assert!(
        err.to_string().contains("SOURCE_DATE_EPOCH=\"yesterday\""),
        "{err}"
    );
    assert_eq!(image::timestamp_from(Some("42\n".into())).unwrap(), 42);
}

#[test]
fn long_name_is_refused() {
    let header = uimage::Header {
        name: "n".repeat(32),
        ..kernel_header(Arch::Arm, Compression::None)
    };
    let err = uimage::write(&header, b"x").unwrap_err();
    assert!(err.to_string().contains("is 32 bytes"), "{err}");
}

fn fit_of<'a>(kernel: &'a [u8], fdt: &'a [u8], time: u32, hashes: &'a [fit::Hash]) -> fit::Fit<'a> {
    fit::Fit {
        description: "Liminix kernel and device tree",
        arch: Arch::Arm,
        time,
        kernel: fit::Kernel {
            data: kernel,
            compression: Compression::Lzma,
            load: 0x4000_8000,
            entry: 0x4000_8000,
        },
        fdt,
        hashes,
    }
}

/// A real device tree blob, from dtc.
fn dtb(dir: &Path) -> Vec<u8> {
    let dts = write(
        dir,
        "board.dts",
        b"/dts-v1/;\n/ { model = \"liminix-test\"; compatible = \"liminix,test\";\n\
          #address-cells = <1>; #size-cells = <1>;\n\
          memory@40000000 { device_type = \"memory\"; reg = <0x40000000 0x8000000>; }; };\n",
    );
    let out = dir.join("board.dtb");
    run(Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb", "-o"])
        .args([&out, &dts]));
    std::fs::read(out).unwrap()
}

struct FitCase {
    _dir: tempfile::TempDir,
    path: PathBuf,
    kernel: Vec<u8>,
    fdt: Vec<u8>,
}

fn fit_case(hashes: &[fit::Hash]) -> FitCase {
    let dir = tempfile::tempdir().unwrap();
    let kernel = image::compress(&kernel_bytes(), Compression::Lzma).unwrap();
    let fdt = dtb(dir.path());
    let blob = fit::write(&fit_of(&kernel, &fdt, EPOCH, hashes)).unwrap();
    let path = write(dir.path(), "kernel.itb", &blob);
    FitCase {
        _dir: dir,
        path,
        kernel,
        fdt,
    }
}

fn fdtget(path: &Path, node: &str, prop: &str, kind: &str) -> String {
    let out = run(Command::new("fdtget")
        .args(["-t", kind])
        .arg(path)
        .args([node, prop]));
    out.trim().to_owned()
}

#[test]
fn fdtget_reads_the_fit_properties() {
    let c = fit_case(&[fit::Hash::Sha256]);
    let p = &c.path;
    assert_eq!(fdtget(p, "/", "timestamp", "u"), EPOCH.to_string());
    assert_eq!(fdtget(p, "/images/kernel", "type", "s"), "kernel");
    assert_eq!(fdtget(p, "/images/kernel", "arch", "s"), "arm");
    assert_eq!(fdtget(p, "/images/kernel", "os", "s"), "linux");
    assert_eq!(fdtget(p, "/images/kernel", "compression", "s"), "lzma");
    assert_eq!(fdtget(p, "/images/kernel", "load", "x"), "40008000");
    assert_eq!(fdtget(p, "/images/kernel", "entry", "x"), "40008000");
    assert_eq!(fdtget(p, "/images/kernel/hash-1", "algo", "s"), "sha256");
    assert_eq!(fdtget(p, "/images/fdt-1", "type", "s"), "flat_dt");
    assert_eq!(fdtget(p, "/images/fdt-1", "compression", "s"), "none");
    assert_eq!(fdtget(p, "/configurations", "default", "s"), "conf-1");
    assert_eq!(fdtget(p, "/configurations/conf-1", "kernel", "s"), "kernel");
    assert_eq!(fdtget(p, "/configurations/conf-1", "fdt", "s"), "fdt-1");
}

/// `sha256sum`'s digest of `data`, an oracle independent of the writer's hashing.
fn sha256sum(dir: &Path, data: &[u8]) -> String {
    let path = write(dir, "hashed", data);
    let out = run(Command::new("sha256sum").arg(&path));
    out.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn mkimage_lists_the_fit_with_the_right_hashes() {
    let c = fit_case(&[fit::Hash::Sha256, fit::Hash::Crc32]);
    let listing = run(Command::new("mkimage").arg("-l").arg(&c.path));
    let dir = tempfile::tempdir().unwrap();
    let crc = |d: &[u8]| format!("{:08x}", crc32fast::hash(d));
    for want in [
        "FIT description: Liminix kernel and device tree".to_owned(),
        " Image 0 (kernel)".into(),
        "  Type:         Kernel Image".into(),
        "  Compression:  lzma compressed".into(),
        "  Architecture: ARM".into(),
        "  OS:           Linux".into(),
        "  Load Address: 0x40008000".into(),
        " Image 1 (fdt-1)".into(),
        "  Type:         Flat Device Tree".into(),
        " Default Configuration: 'conf-1'".into(),
        "  Kernel:       kernel".into(),
        "  FDT:          fdt-1".into(),
        format!("  Hash value:   {}", sha256sum(dir.path(), &c.kernel)),
        format!("  Hash value:   {}", sha256sum(dir.path(), &c.fdt)),
        format!("  Hash value:   {}", crc(&c.kernel)),
        format!("  Hash value:   {}", crc(&c.fdt)),
    ] {
        assert!(listing.contains(&want), "no {want:?} in:\n{listing}");
    }
}

#[test]
fn dumpimage_extracts_kernel_and_fdt() {
    let c = fit_case(&[fit::Hash::Crc32]);
    let dir = tempfile::tempdir().unwrap();
    for (index, want) in [("0", &c.kernel), ("1", &c.fdt)] {
        let out = dir.path().join(format!("image-{index}"));
        run(Command::new("dumpimage")
            .args(["-T", "flat_dt", "-p", index, "-o"])
            .args([&out, &c.path]));
        assert!(
            std::fs::read(&out).unwrap() == *want,
            "image {index} differs"
        );
    }
}

#[test]
fn reads_back_what_mkimage_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let data = image::compress(&kernel_bytes(), Compression::Lzma).unwrap();
    let input = write(dir.path(), "payload", &data);
    let theirs = mkimage_kernel(dir.path(), "arm64", "lzma", &input);
    let mut img = std::fs::read(&theirs).unwrap();
    // Flash padding after the payload is not part of the image.
    img.extend_from_slice(&[0xff; 100]);
    let (header, payload) = uimage::read(&img).unwrap();
    assert_eq!(header, kernel_header(Arch::Arm64, Compression::Lzma));
    assert!(payload == data, "payload read back differs");

    img[uimage::HEADER_LEN + 5] ^= 1;
    let err = uimage::read(&img).unwrap_err();
    assert!(err.to_string().contains("data CRC mismatch"), "{err}");
    img[uimage::HEADER_LEN + 5] ^= 1;
    img[40] ^= 1;
    let err = uimage::read(&img).unwrap_err();
    assert!(err.to_string().contains("header CRC mismatch"), "{err}");
    let err = uimage::read(&img[..63]).unwrap_err();
    assert!(err.to_string().contains("shorter than the header"), "{err}");
}

/// mkimage's own FIT from the same kernel, fdt and options (`-f auto`, which names the kernel
/// node `kernel-1` and writes no hashes) must agree with ours on every typed property.
#[test]
fn fit_properties_match_mkimage_auto() {
    let c = fit_case(&[fit::Hash::Sha256]);
    let dir = tempfile::tempdir().unwrap();
    let kernel = write(dir.path(), "kernel.lzma", &c.kernel);
    let dtb = write(dir.path(), "board.dtb", &c.fdt);
    let theirs = dir.path().join("theirs.itb");
    run(mkimage(EPOCH)
        .args([
            "-f", "auto", "-A", "arm", "-O", "linux", "-T", "kernel", "-C", "lzma",
        ])
        .args(["-a", "0x40008000", "-e", "0x40008000", "-d"])
        .arg(&kernel)
        .arg("-b")
        .args([&dtb, &theirs]));
    let pairs = [
        (
            "/images/kernel",
            "/images/kernel-1",
            ["type", "arch", "os", "compression"].as_slice(),
        ),
        (
            "/images/fdt-1",
            "/images/fdt-1",
            ["type", "arch", "compression"].as_slice(),
        ),
    ];
    for (ours, their_node, props) in pairs {
        for prop in props {
            let want = fdtget(&theirs, their_node, prop, "s");
            assert_eq!(fdtget(&c.path, ours, prop, "s"), want, "{ours} {prop}");
        }
    }
    for prop in ["load", "entry"] {
        let want = fdtget(&theirs, "/images/kernel-1", prop, "x");
        assert_eq!(fdtget(&c.path, "/images/kernel", prop, "x"), want, "{prop}");
    }
    assert_eq!(
        fdtget(&c.path, "/", "timestamp", "u"),
        fdtget(&theirs, "/", "timestamp", "u")
    );
    let listing = run(Command::new("dumpimage").arg("-l").arg(&c.path));
    assert!(
        listing.contains("FIT description: Liminix kernel and device tree"),
        "{listing}"
    );
}
