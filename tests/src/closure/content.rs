//! Synthetic file contents that compress like a router's real files.
//!
//! Real MIPS/ARM binaries compress about 2.5–4x with zstd -19 because they are
//! made of a small instruction vocabulary with low-entropy register and
//! immediate fields, string tables, pointer tables and padding, with a little
//! high-entropy data (crypto tables, compressed resources). The generator
//! mixes exactly those ingredients from a seeded PRNG; the mix ratios were
//! tuned against `zstd -19` and `gzip -6` (see the self-test output).

use super::rng::Rng;

/// Shared by every package: one "architecture", so all binaries use the same
/// opcode templates the way all MIPS code does.
const ARCH_SEED: u64 = 0x4d49_5053_3332_6265;

const WORDS: &[&str] = &[
    "error",
    "failed",
    "interface",
    "config",
    "%s",
    "%d",
    "%u",
    "0x%08x",
    "usage:",
    "--help",
    "wlan0",
    "socket",
    "bind",
    "listen",
    "connect",
    "timeout",
    "invalid",
    "argument",
    "option",
    "cannot",
    "open",
    "read",
    "write",
    "close",
    "memory",
    "allocate",
    "buffer",
    "overflow",
    "netlink",
    "route",
    "address",
    "prefix",
    "lease",
    "dhcp",
    "server",
    "client",
    "request",
    "reply",
    "packet",
    "checksum",
    "device",
    "driver",
    "firmware",
    "version",
    "state",
    "ready",
    "down",
    "up",
    "link",
    "carrier",
    "bridge",
    "vlan",
    "radio",
    "channel",
    "country",
    "beacon",
    "station",
    "associated",
    "auth",
    "key",
    "cipher",
    "ssid",
    "service",
    "restart",
    "signal",
    "child",
    "exited",
    "status",
    "pid",
    "file",
    "directory",
    "not",
    "found",
    "permission",
    "denied",
    "%s: %s\n",
    "/etc/",
    "/run/",
    "/proc/net/",
    "/sys/class/net/",
    "uevent",
    "longrun",
    "oneshot",
    "supervise",
    "notification",
    "fd",
    "ready",
    "log",
    "debug",
    "info",
];

const IDIOMS_SHARED: usize = 96;
const IDIOMS_LOCAL: usize = 160;
/// Probability that the next piece of a function is a known idiom.
const IDIOM_SHARE: f64 = 0.3;

/// One 32-bit instruction "template": opcode bits plus which fields vary.
#[derive(Clone, Copy)]
struct Template {
    bits: u32,
    has_imm: bool,
    has_target: bool,
}

fn templates() -> Vec<Template> {
    let mut rng = Rng::new(ARCH_SEED);
    (0..48)
        .map(|i| Template {
            bits: ((rng.next_u64() as u32) & 0xfc00_0000) | ((i % 8) << 6),
            has_imm: i % 3 != 0,
            has_target: i % 11 == 0,
        })
        .collect()
}

/// Per-file context: the functions it calls and the constants it reuses.
struct CodeCtx {
    templates: Vec<Template>,
    functions: Vec<u32>,
    constants: Vec<u16>,
    /// Recurring instruction sequences (compiler idioms, inlined helpers):
    /// what makes real code compressible beyond its field entropy.
    idioms: Vec<Vec<u32>>,
}

impl CodeCtx {
    fn new(rng: &mut Rng) -> Self {
        let functions = (0..64)
            .map(|_| (rng.next_u64() as u32) & 0x03ff_fffc)
            .collect();
        let constants = (0..32).map(|_| rng.next_u64() as u16).collect();
        let mut ctx = CodeCtx {
            templates: templates(),
            functions,
            constants,
            idioms: Vec::new(),
        };
        let mut arch = Rng::new(ARCH_SEED);
        let mut idioms: Vec<Vec<u32>> = (0..IDIOMS_SHARED)
            .map(|_| ctx.sequence(&mut arch))
            .collect();
        idioms.extend((0..IDIOMS_LOCAL).map(|_| ctx.sequence(rng)));
        ctx.idioms = idioms;
        ctx
    }

    fn sequence(&self, rng: &mut Rng) -> Vec<u32> {
        (0..(2 + rng.below(9)))
            .map(|_| self.instruction(rng))
            .collect()
    }

    fn register(rng: &mut Rng) -> u32 {
        // Compilers use a few registers far more than others.
        [2, 4, 5, 16, 17, 29, 31, 3, 6, 7, 18, 8, 9, 19, 25, 28][rng.skewed(16)]
    }

    fn instruction(&self, rng: &mut Rng) -> u32 {
        let t = self.templates[rng.skewed(self.templates.len())];
        if t.has_target {
            return t.bits | (self.functions[rng.skewed(self.functions.len())] >> 2);
        }
        let regs = (Self::register(rng) << 21) | (Self::register(rng) << 16);
        let imm = if !t.has_imm {
            Self::register(rng) << 11
        } else {
            match rng.below(32) {
                0..=17 => (rng.below(16) as u32) * 4,
                18..=30 => u32::from(self.constants[rng.skewed(self.constants.len())]),
                _ => rng.below(0x1_0000) as u32,
            }
        };
        t.bits | regs | imm
    }

    fn function(&self, rng: &mut Rng, out: &mut Vec<u8>) {
        let frame = 8 * (2 + rng.below(8) as u32);
        let push = |w: u32, out: &mut Vec<u8>| out.extend_from_slice(&w.to_be_bytes());
        push(0x27bd_0000 | (0x1_0000 - frame), out); // addiu sp,sp,-frame
        push(0xafbf_0000 | (frame - 4), out); // sw ra,frame-4(sp)
        let mut left = 4 + rng.skewed(40);
        while left > 0 {
            if rng.chance(IDIOM_SHARE) {
                let idiom = &self.idioms[rng.skewed(self.idioms.len())];
                idiom.iter().for_each(|&w| push(w, out));
                left = left.saturating_sub(idiom.len());
            } else {
                push(self.instruction(rng), out);
                left -= 1;
            }
        }
        push(0x8fbf_0000 | (frame - 4), out); // lw ra
        push(0x03e0_0008, out); // jr ra
        push(0x27bd_0000 | frame, out); // addiu sp,sp,frame
    }
}

/// A string-table entry: a format-string-like run of words.
fn phrase(rng: &mut Rng, out: &mut Vec<u8>) {
    for i in 0..(1 + rng.below(6)) {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(WORDS[rng.skewed(WORDS.len())].as_bytes());
    }
}

/// Bytes of an ELF-like executable or shared object of exactly `len` bytes,
/// embedding `refs` (store paths) the way RPATHs and interpreter paths do.
pub fn binary(seed: u64, len: usize, refs: &[String]) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let ctx = CodeCtx::new(&mut rng);
    let mut out = Vec::with_capacity(len + 256);
    out.extend_from_slice(b"\x7fELF\x01\x02\x01\0\0\0\0\0\0\0\0\0\0\x02\0\x08\0\0\0\x01");
    out.resize(52, 0);
    for r in refs {
        out.extend_from_slice(r.as_bytes());
        out.extend_from_slice(b"/lib\0");
    }
    // References are never cut: a truncated store path is not a reference.
    let header = out.len();
    while out.len() < len {
        match rng.below(100) {
            0..=65 => ctx.function(&mut rng, &mut out),
            66..=82 => (0..8).for_each(|_| {
                phrase(&mut rng, &mut out);
                out.push(0);
            }),
            83..=91 => pointer_table(&mut rng, &mut out),
            92..=97 => out.resize(out.len().next_multiple_of(64) + 16, 0),
            _ => {
                let n = 24 + rng.index(48);
                noise(&mut rng, &mut out, n);
            }
        }
    }
    out.truncate(len.max(header));
    out
}

fn pointer_table(rng: &mut Rng, out: &mut Vec<u8>) {
    let base = 0x0040_0000u32 + ((rng.below(0x4000) as u32) << 4);
    for _ in 0..(4 + rng.below(12)) {
        let v = base + (rng.below(256) as u32) * 4;
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn noise(rng: &mut Rng, out: &mut Vec<u8>, n: usize) {
    let start = out.len();
    out.resize(start + n, 0);
    rng.fill(&mut out[start..]);
}

/// Firmware blobs are denser than code: mostly code-like, a lot more noise.
pub fn firmware(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let ctx = CodeCtx::new(&mut rng);
    let mut out = Vec::with_capacity(len + 256);
    while out.len() < len {
        if rng.chance(0.75) {
            ctx.function(&mut rng, &mut out);
        } else {
            let n = 64 + rng.index(64);
            noise(&mut rng, &mut out, n);
        }
    }
    out.truncate(len);
    out
}

/// Human-readable text (docs, configs, Lua/Fennel sources) of about `len` bytes.
pub fn text(seed: u64, len: usize, refs: &[String]) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 128);
    for r in refs {
        out.extend_from_slice(format!("# uses {r}\n").as_bytes());
    }
    let header = out.len();
    while out.len() < len {
        if rng.chance(0.2) {
            out.extend_from_slice(b"    ");
        }
        phrase(&mut rng, &mut out);
        out.push(if rng.chance(0.3) { b'\n' } else { b' ' });
    }
    out.truncate(len.max(header).max(1));
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    out
}

/// End of the leading bytes an edit must not touch: the ELF header and the
/// embedded store paths (a half-overwritten path is no reference at all).
fn protected_prefix(bytes: &[u8]) -> usize {
    let needle = b"/nix/store/";
    let last = bytes.windows(needle.len()).rposition(|w| w == needle);
    let after = last.map_or(0, |i| {
        bytes[i..]
            .iter()
            .position(|&c| c == 0 || c == b'\n')
            .map_or(bytes.len(), |p| i + p + 1)
    });
    after.max(52)
}

/// A rebuild with a small source change: a few regions of code re-generated
/// in place and one short insertion that shifts everything after it, as
/// relinking does.
pub fn edit(bytes: &mut Vec<u8>, seed: u64) {
    let mut rng = Rng::new(seed);
    let start = protected_prefix(bytes);
    if bytes.len() < start + 64 {
        bytes.extend_from_slice(format!("# rebuilt {seed:x}\n").as_bytes());
        return;
    }
    let ctx = CodeCtx::new(&mut rng);
    for _ in 0..(1 + bytes.len() / 16384) {
        let mut patch = Vec::new();
        ctx.function(&mut rng, &mut patch);
        let at = start + rng.index(bytes.len() - start);
        let end = (at + patch.len()).min(bytes.len());
        bytes[at..end].copy_from_slice(&patch[..end - at]);
    }
    let mut insert = Vec::new();
    ctx.function(&mut rng, &mut insert);
    let at = start + rng.index(bytes.len() - start);
    bytes.splice(at..at, insert);
}

/// The text counterpart of [`edit`]: a changed line somewhere after the
/// references.
pub fn edit_text(bytes: &mut Vec<u8>, seed: u64) {
    let mut rng = Rng::new(seed);
    let start = protected_prefix(bytes).min(bytes.len());
    let newlines: Vec<usize> = (start..bytes.len())
        .filter(|&i| bytes[i] == b'\n')
        .collect();
    let at = if newlines.is_empty() {
        bytes.len()
    } else {
        newlines[rng.index(newlines.len())] + 1
    };
    let line = format!("# rebuilt {seed:016x}\n");
    bytes.splice(at..at, line.into_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_length_and_deterministic() {
        let refs = vec!["/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo".to_string()];
        let a = binary(3, 10_000, &refs);
        assert_eq!(a.len(), 10_000);
        assert_eq!(a, binary(3, 10_000, &refs));
        assert_ne!(a, binary(4, 10_000, &refs));
        assert!(a.windows(refs[0].len()).any(|w| w == refs[0].as_bytes()));
    }

    #[test]
    fn edit_changes_little() {
        let a = binary(3, 50_000, &[]);
        let mut b = a.clone();
        edit(&mut b, 9);
        assert_ne!(a, b);
        let same_prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        assert!(same_prefix > 52);
    }
}
