//! Inputs for the `liminix-pack image` tests: small kernels compiled by the cross compilers of
//! scripts/setup.sh, a DTB from `dtc`, a small root tree, board files, and a runner for the
//! reference tools (a missing tool fails the test).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const EPOCH: &str = "1700000000";

pub fn pack() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_liminix-pack"));
    c.env("SOURCE_DATE_EPOCH", EPOCH);
    c
}

pub fn run(tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} (scripts/setup.sh installs it): {e}"));
    assert!(out.status.success(), "{tool} {args:?}: {out:?}");
    out.stdout
}

pub fn text(tool: &str, args: &[&str]) -> String {
    String::from_utf8(run(tool, args)).unwrap()
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const KERNEL_C: &str = r#"
static const char msg[] = "liminix test kernel";
int counter = 7;
int bss_thing[64];
void __start(void) { volatile const char *p = msg; for (;;) { counter += *p; bss_thing[1] = counter; } }
"#;

/// Text, then data one page further (a gap objcopy fills with zeros), then bss (left out).
fn linker_script(at: u64) -> String {
    format!(
        "ENTRY(__start)\nSECTIONS {{\n . = {at:#x};\n .text : {{ *(.text*) }}\n .rodata : {{ *(.rodata*) }}\n \
         . = ALIGN(0x1000);\n .data : {{ *(.data*) *(.sdata*) }}\n .appended_dtb : {{ KEEP(*(.appended_dtb)) }}\n .bss : {{ *(.bss*) *(.sbss*) *(COMMON) }}\n \
         /DISCARD/ : {{ *(.MIPS.abiflags) *(.reginfo) *(.note*) *(.comment) *(.pdr) *(.gnu.attributes) *(.ARM.attributes) *(.mdebug*) }}\n}}\n"
    )
}

/// A static ELF "kernel" for the cross compiler `prefix` (`mips-linux-gnu`, …) linked at `at`.
pub fn elf_kernel(dir: &Path, prefix: &str, at: u64) -> PathBuf {
    elf_kernel_with(dir, prefix, at, "")
}

/// The section a MIPS kernel reserves for its DTB, 4 KiB here, as C `elf_kernel_with` adds.
pub const APPENDED_DTB_C: &str =
    "const char __attribute__((section(\".appended_dtb\"))) __appended_dtb[4096] = {0};\n";

/// [`elf_kernel`] with more C source.
pub fn elf_kernel_with(dir: &Path, prefix: &str, at: u64, extra: &str) -> PathBuf {
    let src = dir.join("k.c");
    std::fs::write(&src, format!("{KERNEL_C}{extra}")).unwrap();
    let ld = dir.join(format!("{prefix}.ld"));
    std::fs::write(&ld, linker_script(at)).unwrap();
    let tag = if extra.is_empty() { "" } else { "-x" };
    let out = dir.join(format!("vmlinux-{prefix}-{at:x}{tag}"));
    let mut args = vec![
        "-O1",
        "-nostdlib",
        "-static",
        "-fno-pic",
        "-Wl,--build-id=none",
    ];
    if prefix.starts_with("mips") {
        args.extend(["-mno-abicalls", "-G0"]);
    }
    let script = format!("-Wl,-T,{}", p(&ld));
    args.extend([
        script.as_str(),
        "-Wl,-z,max-page-size=0x1000",
        "-o",
        p(&out),
        p(&src),
    ]);
    run(&format!("{prefix}-gcc"), &args);
    out
}

/// What `objcopy -O binary` makes of `elf`.
pub fn objcopy_binary(dir: &Path, prefix: &str, elf: &Path) -> Vec<u8> {
    let out = dir.join(format!(
        "{}.bin",
        elf.file_name().unwrap().to_str().unwrap()
    ));
    run(
        &format!("{prefix}-objcopy"),
        &["-O", "binary", p(elf), p(&out)],
    );
    std::fs::read(out).unwrap()
}

/// The entry point `readelf -h` reads.
pub fn readelf_entry(elf: &Path) -> u64 {
    let t = text("readelf", &["-h", p(elf)]);
    let line = t
        .lines()
        .find(|l| l.contains("Entry point address"))
        .unwrap();
    let hex = line.rsplit("0x").next().unwrap().trim();
    u64::from_str_radix(hex, 16).unwrap()
}

/// An arm64 `Image` as the kernel build makes it: the header's magic "ARM\x64" at 0x38.
pub fn arm64_image(dir: &Path) -> PathBuf {
    let mut data = liminix_testdata::pattern(64, 96 * 1024);
    data[0x38..0x3c].copy_from_slice(b"ARM\x64");
    let path = dir.join("Image");
    std::fs::write(&path, data).unwrap();
    path
}

/// An ARM `zImage`: magic 0x016f2818 at 0x24, start and end at 0x28/0x2c.
pub fn arm_zimage(dir: &Path) -> PathBuf {
    let len = 80 * 1024u32;
    let mut data = liminix_testdata::pattern(32, len as usize);
    data[0x24..0x28].copy_from_slice(&0x016f_2818u32.to_le_bytes());
    data[0x28..0x2c].copy_from_slice(&0u32.to_le_bytes());
    data[0x2c..0x30].copy_from_slice(&len.to_le_bytes());
    let path = dir.join("zImage");
    std::fs::write(&path, data).unwrap();
    path
}

pub fn dtb(dir: &Path) -> PathBuf {
    let dts = dir.join("t.dts");
    std::fs::write(
        &dts,
        "/dts-v1/;\n/ { compatible = \"test,board\"; #address-cells = <1>; #size-cells = <1>;\n\
         memory@40000000 { device_type = \"memory\"; reg = <0x40000000 0x8000000>; };\n chosen { };\n};\n",
    )
    .unwrap();
    let out = dir.join("t.dtb");
    run("dtc", &["-I", "dts", "-O", "dtb", "-o", p(&out), p(&dts)]);
    out
}

/// A small root tree: a text file, a link, a binary-looking file, an empty directory.
pub fn root_tree(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("var/empty")).unwrap();
    std::fs::write(root.join("etc/motd"), "hello from liminix\n").unwrap();
    std::os::unix::fs::symlink("/bin/busybox", root.join("bin/sh")).unwrap();
    std::fs::write(
        root.join("bin/busybox"),
        liminix_testdata::pattern(5, 200_000),
    )
    .unwrap();
    root
}

pub fn board_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `liminix-pack image` and insists it succeeds.
pub fn image(args: &[&str]) -> Output {
    let o = pack().arg("image").args(args).output().unwrap();
    assert!(o.status.success(), "image {args:?}: {}", stderr(&o));
    o
}

/// The files under `dir`, relative and sorted, with their bytes.
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_str().unwrap().to_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

pub fn inspect_json(file: &Path) -> serde_json::Value {
    let o = pack()
        .args(["inspect", "--json", p(file)])
        .output()
        .unwrap();
    assert!(o.status.success(), "inspect {file:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}
