//! MIPS layouts against the real tools: an ELF linked by binutils (both endians) whose segments
//! readelf lists, and uImages made by mkimage with each compression.

mod common;

use std::path::Path;
use std::process::Command;

use common::{run, text};
use liminix_kexec::{mips, KexecError};

const PAGE: u64 = 4096;

/// A kernel-like ELF: code at 0x80100000 (KSEG0), data and bss after it, entry at `start`.
fn link(dir: &Path, prefix: &str) -> Vec<u8> {
    let src = dir.join("k.s");
    std::fs::write(
        &src,
        ".text\n.globl start\nstart: nop\nnop\n.fill 5000,1,0x11\n.data\n.fill 7000,1,0x22\n.bss\n.space 70000\n",
    )
    .unwrap();
    let obj = dir.join("k.o");
    let elf = dir.join("k.elf");
    run(Command::new(format!("{prefix}-as"))
        .arg("-o")
        .arg(&obj)
        .arg(&src));
    run(Command::new(format!("{prefix}-ld"))
        .args([
            "-e",
            "start",
            "-Ttext",
            "0x80100000",
            "-Tdata",
            "0x80104000",
            "-o",
        ])
        .arg(&elf)
        .arg(&obj));
    std::fs::read(&elf).unwrap()
}

/// (offset, physical address, file size, memory size) of each LOAD line of `readelf -lW`.
fn readelf_loads(dir: &Path, elf: &[u8]) -> Vec<(usize, u64, usize, u64)> {
    let path = dir.join("r.elf");
    std::fs::write(&path, elf).unwrap();
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    text(Command::new("readelf").arg("-lW").arg(&path))
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (hex(f[1]) as usize, hex(f[3]), hex(f[4]) as usize, hex(f[5]))
        })
        .collect()
}

fn check_elf(prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let elf = link(dir.path(), prefix);
    let layout = mips::elf_segments(&elf, PAGE).unwrap();
    let loads = readelf_loads(dir.path(), &elf);
    assert!(!loads.is_empty());
    assert_eq!(layout.segments.len(), loads.len(), "{layout:?}");
    for (s, &(offset, paddr, filesz, memsz)) in layout.segments.iter().zip(&loads) {
        let phys = paddr & 0x1fff_ffff;
        let pad = (phys % PAGE) as usize;
        assert_eq!(s.address, phys - pad as u64, "{s:?}");
        assert_eq!(&s.data[pad..], &elf[offset..offset + filesz], "{s:?}");
        assert!(s.size >= memsz + pad as u64 && s.size % PAGE == 0, "{s:?}");
    }
    assert_eq!(layout.entry, 0x0010_0000);
}

#[test]
fn elf_segments_are_the_ones_readelf_lists_little_endian() {
    check_elf("mipsel-linux-gnu");
}

#[test]
fn elf_segments_are_the_ones_readelf_lists_big_endian() {
    check_elf("mips-linux-gnu");
}

fn mkimage(dir: &Path, payload: &[u8], comp: &str) -> Vec<u8> {
    let raw = dir.join("payload");
    std::fs::write(&raw, payload).unwrap();
    let data = match comp {
        "none" => raw.clone(),
        "gzip" => {
            run(Command::new("gzip").args(["-n", "-k", "-f"]).arg(&raw));
            dir.join("payload.gz")
        }
        _ => {
            run(Command::new("xz")
                .args(["--format=lzma", "-k", "-f"])
                .arg(&raw));
            dir.join("payload.lzma")
        }
    };
    let out = dir.join("uImage");
    run(Command::new("mkimage")
        .args(["-A", "mips", "-O", "linux", "-T", "kernel", "-C", comp])
        .args(["-a", "0x80060000", "-e", "0x80060400", "-n", "test", "-d"])
        .arg(&data)
        .arg(&out));
    std::fs::read(&out).unwrap()
}

#[test]
fn uimage_payloads_land_at_the_physical_load_address() {
    let dir = tempfile::tempdir().unwrap();
    let payload = common::payload(300_000);
    for comp in ["none", "gzip", "lzma"] {
        let image = mkimage(dir.path(), &payload, comp);
        let layout = mips::uimage_segments(&image, PAGE).unwrap();
        assert_eq!(layout.entry, 0x60400, "{comp}");
        assert_eq!(layout.segments.len(), 1);
        assert_eq!(layout.segments[0].address, 0x60000, "{comp}");
        assert_eq!(layout.segments[0].data, payload, "{comp}");
    }
}

#[test]
fn damaged_uimages_are_refused_by_their_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let image = mkimage(dir.path(), &common::payload(10_000), "gzip");
    let mut header = image.clone();
    header[20] ^= 1;
    let e = mips::uimage_segments(&header, PAGE).unwrap_err();
    assert!(e.to_string().contains("header CRC"), "{e}");
    let mut data = image.clone();
    data[100] ^= 1;
    let e = mips::uimage_segments(&data, PAGE).unwrap_err();
    assert!(e.to_string().contains("data CRC"), "{e}");
    let e = mips::uimage_segments(&image[..image.len() - 1], PAGE).unwrap_err();
    assert!(matches!(e, KexecError::Malformed(_)), "{e}");
}

#[test]
fn the_command_line_tree_and_initramfs_go_above_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let elf = link(dir.path(), "mipsel-linux-gnu");
    let layout = mips::elf_segments(&elf, PAGE).unwrap();
    let top = layout
        .segments
        .iter()
        .map(|s| s.address + s.size)
        .max()
        .unwrap();
    let dtb = common::dtc(
        dir.path(),
        "/dts-v1/;\n/ { #address-cells = <1>; #size-cells = <1>; chosen { }; };\n",
    );
    let ram = [liminix_kexec::iomem::Ram {
        start: 0,
        end: 0x1000_0000,
    }];
    let initrd = common::payload(50_000);
    let layout = mips::finish(
        layout,
        &ram,
        Some(&initrd),
        Some(&dtb),
        "console=ttyS0 m=1",
        false,
        PAGE,
    )
    .unwrap();
    let n = layout.segments.len();
    let (rd, tree) = (&layout.segments[n - 3], &layout.segments[n - 2]);
    assert!(
        rd.address >= top && tree.address >= rd.address + rd.size,
        "{layout:?}"
    );
    let d = dir.path();
    assert_eq!(
        common::fdtget(d, &tree.data, &["/chosen", "bootargs"]),
        "console=ttyS0 m=1"
    );
    let start = common::fdtget(d, &tree.data, &["-tx", "/chosen", "linux,initrd-start"]);
    assert_eq!(u64::from_str_radix(&start, 16).unwrap(), rd.address);
    let small = [liminix_kexec::iomem::Ram { start: 0, end: top }];
    let layout = mips::elf_segments(&elf, PAGE).unwrap();
    let e = mips::finish(layout, &small, Some(&initrd), None, "", false, PAGE).unwrap_err();
    assert!(matches!(e, KexecError::OutsideRam { .. }), "{e}");
}

#[test]
fn truncated_or_damaged_kernels_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let elf = link(dir.path(), "mips-linux-gnu");
    let image = mkimage(dir.path(), &common::payload(4000), "gzip");
    for kernel in [&elf, &image] {
        for len in (0..kernel.len()).step_by(7) {
            let _ = mips::elf_segments(&kernel[..len], PAGE);
            let _ = mips::uimage_segments(&kernel[..len], PAGE);
        }
        for i in 0..kernel.len().min(200) {
            let mut k = kernel.clone();
            k[i] ^= 0xff;
            let _ = mips::elf_segments(&k, PAGE);
            let _ = mips::uimage_segments(&k, PAGE);
        }
    }
}
