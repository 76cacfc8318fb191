//! The arguments a MIPS kernel gets from its firmware, for kernels that have no other source.
//!
//! YAMON on Malta and U-Boot's `bootm` on MIPS routers start a kernel with a0 = argc, a1 = argv,
//! a2 = envp (32-bit KSEG0 pointers), and kernels on those platforms build their command line
//! from argv[1..] and read `memsize` from the environment. kexec_load instead starts the new
//! kernel with a0..a3 from the kernel's `kexec_args`, which only `CONFIG_UHI_BOOT` kernels fill
//! (a0 = -2, a1 = a device tree segment); everywhere else they are zero, and the new kernel
//! would boot with an empty command line and, on Malta, 32 MiB of RAM. So the entry point is a
//! stub of ours: it leaves a UHI hand-over (a0 = -2) alone, otherwise loads argc/argv/envp
//! pointing into its own segment, and jumps to the kernel. docs/kexec.md has the layout.

use crate::segments::Segment;
use crate::KexecError;

/// What the stub hands over besides the kernel's entry point.
pub struct BootArgs<'a> {
    pub command_line: &'a str,
    /// `name=value` strings of the firmware environment.
    pub environment: &'a [String],
    /// Instructions and pointers are written in this byte order (the CPU's).
    pub big_endian: bool,
}

/// The stub's code takes 13 words; the argument vectors start after this.
const VECTORS: usize = 64;

/// The segment's name in layouts and reports.
pub const WHAT: &str = "boot arguments";

/// The KSEG0 (cached, unmapped) address of physical `address`: the form argv pointers and
/// jump targets take on 32-bit MIPS.
pub fn kseg0(address: u64) -> Result<u32, KexecError> {
    u32::try_from(address)
        .ok()
        .filter(|a| *a < 0x2000_0000)
        .map(|a| a | 0x8000_0000)
        .ok_or_else(|| {
            KexecError::Malformed(format!(
                "{address:#x} lies above 512 MiB, outside KSEG0, where boot arguments must be"
            ))
        })
}

const A0: u32 = 4;
const A1: u32 = 5;
const A2: u32 = 6;
const A3: u32 = 7;
const T0: u32 = 8;
const T9: u32 = 25;

fn immediate(op: u32, rs: u32, rt: u32, value: u16) -> u32 {
    (op << 26) | (rs << 21) | (rt << 16) | u32::from(value)
}

fn addiu(rt: u32, rs: u32, value: i16) -> u32 {
    immediate(0x09, rs, rt, value as u16)
}

/// `lui` + `ori`: a full 32-bit constant into `rt`.
fn load(rt: u32, value: u32) -> [u32; 2] {
    [
        immediate(0x0f, 0, rt, (value >> 16) as u16),
        immediate(0x0d, rt, rt, value as u16),
    ]
}

/// The stub's instructions (MIPS32, valid from release 1 to 6).
pub fn stub(kernel_entry: u32, argv: u32, envp: u32) -> Vec<u32> {
    const NOP: u32 = 0;
    let mut code = vec![
        addiu(T0, 0, -2),
        // beq a0, t0: to the jump (7 words past the delay slot) when UHI gave a0 = -2.
        immediate(0x04, A0, T0, 7),
        NOP,
        addiu(A0, 0, 2),
    ];
    code.extend(load(A1, argv));
    code.extend(load(A2, envp));
    code.push((A3 << 11) | 0x21); // addu a3, zero, zero
    code.extend(load(T9, kernel_entry));
    code.push((T9 << 21) | 0x09); // jalr zero, t9 (release 6 has no jr encoding of its own)
    code.push(NOP);
    code
}

/// The stub, argv (`kexec`, the command line) and envp with their strings, as one segment at
/// physical `address`, which becomes the entry point.
pub fn segment(
    args: &BootArgs,
    address: u64,
    kernel_entry: u64,
    page: u64,
) -> Result<Segment, KexecError> {
    let base = kseg0(address)?;
    let argv_at = VECTORS;
    let envp_at = argv_at + 3 * 4;
    let mut strings_at = envp_at + (args.environment.len() + 1) * 4;
    let mut strings: Vec<u8> = Vec::new();
    let mut pointers = Vec::new();
    let texts = ["kexec", args.command_line]
        .into_iter()
        .chain(args.environment.iter().map(String::as_str));
    for text in texts {
        let offset = u32::try_from(strings_at).map_err(|_| too_long())?;
        pointers.push(base.checked_add(offset).ok_or_else(too_long)?);
        strings.extend_from_slice(text.as_bytes());
        strings.push(0);
        strings_at = strings_at
            .checked_add(text.len() + 1)
            .ok_or_else(too_long)?;
    }
    let (argv, envp) = pointers.split_at(2);
    let code = stub(
        kseg0(kernel_entry)?,
        base + argv_at as u32,
        base + envp_at as u32,
    );
    let mut words: Vec<u32> = code;
    words.resize(VECTORS / 4, 0);
    words.extend(argv);
    words.push(0);
    words.extend(envp);
    words.push(0);
    let mut data: Vec<u8> = words
        .iter()
        .flat_map(|w| {
            if args.big_endian {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            }
        })
        .collect();
    data.extend(strings);
    let len = data.len() as u64;
    Segment::new(WHAT, data, address, len, page)
}

fn too_long() -> KexecError {
    KexecError::Malformed("the boot arguments do not fit 32-bit addresses".into())
}

/// `command_line` without the `rd_start=`/`rd_size=` words a previous boot loader added (QEMU's
/// Malta does), which would describe an initramfs that is not there any more; unchanged when
/// it has none.
pub fn without_initrd_words(command_line: &str) -> String {
    let stale = |w: &str| w.starts_with("rd_start=") || w.starts_with("rd_size=");
    if !command_line.split_whitespace().any(stale) {
        return command_line.to_owned();
    }
    command_line
        .split_whitespace()
        .filter(|w| !stale(w))
        .collect::<Vec<_>>()
        .join(" ")
}
