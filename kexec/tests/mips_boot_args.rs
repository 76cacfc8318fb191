//! The MIPS boot-argument stub against binutils: objdump disassembles what the agent encoded (both
//! endians), and the argv/envp words point at the strings a firmware-argument kernel reads.

mod common;

use std::path::Path;
use std::process::Command;

use common::text;
use liminix_kexec::iomem::Ram;
use liminix_kexec::mips;
use liminix_kexec::mips_boot::{self, BootArgs};

const PAGE: u64 = 4096;

/// `objdump -D` of `code` as raw MIPS32r2 words: one "mnemonic operands" per instruction.
fn disassemble(dir: &Path, code: &[u8], big: bool) -> Vec<String> {
    let path = dir.join("stub.bin");
    std::fs::write(&path, code).unwrap();
    let (tool, endian) = if big {
        ("mips-linux-gnu-objdump", "-EB")
    } else {
        ("mipsel-linux-gnu-objdump", "-EL")
    };
    text(
        Command::new(tool)
            .args([
                "-D",
                "-b",
                "binary",
                "-m",
                "mips:isa32r2",
                endian,
                "-M",
                "no-aliases",
            ])
            .arg(&path),
    )
    .lines()
    .filter_map(|l| {
        // "   0:\t2408fffe \taddiu\tt0,zero,-2"
        let mut f = l.split('\t');
        f.next()?.trim().strip_suffix(':')?;
        let _word = f.next()?;
        Some(f.collect::<Vec<_>>().join(" ").trim().to_owned())
    })
    .collect()
}

fn stub_reads_as_mips(big: bool) {
    let dir = tempfile::tempdir().unwrap();
    let args = BootArgs {
        command_line: "console=ttyS0",
        environment: &["memsize=268435456".to_owned()],
        big_endian: big,
    };
    let s = mips_boot::segment(&args, 0x0123_4000, 0x0010_0400, PAGE).unwrap();
    let asm = disassemble(dir.path(), &s.data[..13 * 4], big);
    let expected = [
        "addiu t0,zero,-2",
        "beq a0,t0,0x24",
        "sll zero,zero,0x0",
        "addiu a0,zero,2",
        "lui a1,0x8123",
        "ori a1,a1,0x4040",
        "lui a2,0x8123",
        "ori a2,a2,0x404c",
        "addu a3,zero,zero",
        "lui t9,0x8010",
        "ori t9,t9,0x400",
        "jalr zero,t9",
        "sll zero,zero,0x0",
    ];
    assert_eq!(asm, expected, "{}", if big { "big" } else { "little" });
}

#[test]
fn the_stub_disassembles_to_the_argument_hand_over_little_endian() {
    stub_reads_as_mips(false);
}

#[test]
fn the_stub_disassembles_to_the_argument_hand_over_big_endian() {
    stub_reads_as_mips(true);
}

/// The NUL-terminated string at KSEG0 pointer `p` inside segment `data` based at `base`.
fn string_at(data: &[u8], base: u32, p: u32) -> String {
    let at = (p - base) as usize;
    let end = data[at..].iter().position(|b| *b == 0).unwrap() + at;
    String::from_utf8(data[at..end].to_vec()).unwrap()
}

#[test]
fn argv_and_envp_carry_the_command_line_initramfs_and_memory_size() {
    let ram = [Ram {
        start: 0,
        end: 0x1000_0000,
    }];
    let kernel = liminix_kexec::Segment::new("k", vec![1; 5000], 0x10_0000, 0x40_0000, PAGE);
    let layout = liminix_kexec::Layout {
        entry: 0x10_0400,
        segments: vec![kernel.unwrap()],
    };
    let initrd = common::payload(50_000);
    let line = "console=ttyS0 rd_start=0x80f00000 rd_size=99 marker=1";
    let layout = mips::finish(layout, &ram, Some(&initrd), None, line, false, PAGE).unwrap();
    let boot = layout.segments.last().unwrap();
    let rd = &layout.segments[1];
    assert_eq!(boot.what, mips_boot::WHAT);
    assert_eq!(layout.entry, boot.address, "the stub is the entry point");
    let base = mips_boot::kseg0(boot.address).unwrap();
    let word = |i: usize| u32::from_le_bytes(boot.data[64 + 4 * i..68 + 4 * i].try_into().unwrap());
    assert_eq!(string_at(&boot.data, base, word(0)), "kexec");
    // The stale initramfs words are dropped, the real ones appended.
    assert_eq!(
        string_at(&boot.data, base, word(1)),
        format!(
            "console=ttyS0 marker=1 rd_start={:#x} rd_size=50000",
            0x8000_0000 | rd.address
        )
    );
    assert_eq!(word(2), 0, "argv ends");
    assert_eq!(string_at(&boot.data, base, word(3)), "memsize=268435456");
    assert_eq!(word(4), 0, "envp ends");
}

#[test]
fn boot_arguments_above_kseg0_are_refused() {
    let e = mips_boot::kseg0(0x2000_0000).unwrap_err();
    assert!(e.to_string().contains("512 MiB"), "{e}");
    assert_eq!(mips_boot::kseg0(0x1fff_f000).unwrap(), 0x9fff_f000);
    assert_eq!(mips_boot::without_initrd_words("a  b"), "a  b");
}
