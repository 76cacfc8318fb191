//! What a dynamically linked program asks of the loader: its interpreter (`PT_INTERP`), the
//! libraries it names (`DT_NEEDED`) and where it says to look (`DT_RUNPATH`, `DT_RPATH`). Read
//! from the file itself, for every byte order and word size, so that a MIPS router's dropbear is
//! read the same on the router and on an x86_64 build host (where `ldd` could not run it).

use std::path::Path;

use crate::RecoveryError;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// `e_machine`: libraries must have the program's.
    pub machine: u16,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    /// RUNPATH, or RPATH when there is no RUNPATH (the loader's own rule), split at `:`.
    pub search: Vec<String>,
}

struct Reader<'a> {
    data: &'a [u8],
    big: bool,
    wide: bool,
}

impl Reader<'_> {
    fn bytes(&self, off: u64, len: u64) -> Option<&[u8]> {
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.data.get(start..end)
    }

    fn u16(&self, off: u64) -> Option<u16> {
        let b: [u8; 2] = self.bytes(off, 2)?.try_into().ok()?;
        Some(if self.big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, off: u64) -> Option<u32> {
        let b: [u8; 4] = self.bytes(off, 4)?.try_into().ok()?;
        Some(if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn u64(&self, off: u64) -> Option<u64> {
        let b: [u8; 8] = self.bytes(off, 8)?.try_into().ok()?;
        Some(if self.big {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    /// An address-sized field.
    fn word(&self, off: u64) -> Option<u64> {
        match self.wide {
            true => self.u64(off),
            false => self.u32(off).map(u64::from),
        }
    }

    fn cstr(&self, off: u64) -> Option<String> {
        let start = usize::try_from(off).ok()?;
        let rest = self.data.get(start..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        String::from_utf8(rest[..end].to_vec()).ok()
    }
}

/// One program header: type, file offset, virtual address, size in the file.
struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// Reads the dynamic-linking needs of the ELF file `path`; a static program has none.
pub fn read(path: &Path) -> Result<Dynamic, RecoveryError> {
    let data = std::fs::read(path).map_err(RecoveryError::io("reading", path))?;
    parse(&data).map_err(|reason| RecoveryError::Elf {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    })
}

/// [`read`] on bytes; the error says what is wrong.
pub fn parse(data: &[u8]) -> Result<Dynamic, &'static str> {
    if data.get(..4) != Some(b"\x7fELF") {
        return Err("no ELF magic");
    }
    let (wide, big) = match (data.get(4), data.get(5)) {
        (Some(1), Some(1)) => (false, false),
        (Some(1), Some(2)) => (false, true),
        (Some(2), Some(1)) => (true, false),
        (Some(2), Some(2)) => (true, true),
        _ => return Err("unknown ELF class or byte order"),
    };
    let r = Reader { data, big, wide };
    let machine = r.u16(18).ok_or("header cut short")?;
    let segments = segments(&r).ok_or("program headers cut short")?;
    let mut out = Dynamic {
        machine,
        ..Dynamic::default()
    };
    for s in &segments {
        if s.kind == PT_INTERP {
            out.interpreter = Some(r.cstr(s.offset).ok_or("bad PT_INTERP")?);
        }
    }
    if let Some(dynamic) = segments.iter().find(|s| s.kind == PT_DYNAMIC) {
        dynamic_section(&r, dynamic, &segments, &mut out).ok_or("bad dynamic section")?;
    }
    Ok(out)
}

fn segments(r: &Reader) -> Option<Vec<Segment>> {
    let (phoff, phentsize, phnum) = match r.wide {
        true => (r.u64(32)?, r.u16(54)?, r.u16(56)?),
        false => (u64::from(r.u32(28)?), r.u16(42)?, r.u16(44)?),
    };
    (0..u64::from(phnum))
        .map(|i| {
            let at = phoff.checked_add(i.checked_mul(u64::from(phentsize))?)?;
            let kind = r.u32(at)?;
            Some(match r.wide {
                true => Segment {
                    kind,
                    offset: r.u64(at + 8)?,
                    vaddr: r.u64(at + 16)?,
                    filesz: r.u64(at + 32)?,
                },
                false => Segment {
                    kind,
                    offset: u64::from(r.u32(at + 4)?),
                    vaddr: u64::from(r.u32(at + 8)?),
                    filesz: u64::from(r.u32(at + 16)?),
                },
            })
        })
        .collect()
}

/// The file offset of the virtual address `vaddr`, through the load segment holding it.
fn file_offset(segments: &[Segment], vaddr: u64) -> Option<u64> {
    let s = segments
        .iter()
        .find(|s| s.kind == PT_LOAD && vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)?;
    (vaddr - s.vaddr).checked_add(s.offset)
}

fn dynamic_section(
    r: &Reader,
    dynamic: &Segment,
    segments: &[Segment],
    out: &mut Dynamic,
) -> Option<()> {
    let entry = if r.wide { 16 } else { 8 };
    let half = entry / 2;
    let mut tags = Vec::new();
    let mut at = dynamic.offset;
    let end = dynamic.offset.checked_add(dynamic.filesz)?;
    while at.checked_add(entry)? <= end {
        let (tag, val) = (r.word(at)?, r.word(at + half)?);
        if tag == DT_NULL {
            break;
        }
        tags.push((tag, val));
        at += entry;
    }
    let strtab = tags.iter().find(|(t, _)| *t == DT_STRTAB)?.1;
    let strtab = file_offset(segments, strtab)?;
    let string = |off: u64| r.cstr(strtab.checked_add(off)?);
    let mut rpath = Vec::new();
    let mut runpath = Vec::new();
    for &(tag, val) in &tags {
        match tag {
            DT_NEEDED => out.needed.push(string(val)?),
            DT_RPATH => rpath.push(string(val)?),
            DT_RUNPATH => runpath.push(string(val)?),
            _ => {}
        }
    }
    let chosen = if runpath.is_empty() { rpath } else { runpath };
    out.search = chosen
        .iter()
        .flat_map(|p| p.split(':'))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The oracle is binutils' `readelf -d`/`-l` on the same file.
    #[test]
    fn needs_match_readelf_for_a_dynamic_program() {
        let prog = Path::new("/usr/sbin/dropbear");
        let ours = read(prog).expect("dropbear (Debian package dropbear-bin) is installed");
        let out = Command::new("readelf")
            .args(["-d", "-l", "-W"])
            .arg(prog)
            .output()
            .expect("readelf (Debian package binutils)");
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let needed: Vec<String> = text
            .lines()
            .filter(|l| l.contains("(NEEDED)"))
            .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
            .collect();
        assert!(!needed.is_empty());
        assert_eq!(ours.needed, needed);
        let interp = text
            .lines()
            .find_map(|l| l.split("interpreter: ").nth(1))
            .map(|s| s.trim_end_matches(']').to_string());
        assert_eq!(ours.interpreter, interp);
        assert_eq!(ours.machine, 62);
    }

    #[test]
    fn a_static_program_needs_nothing_and_garbage_is_refused() {
        let busybox = read(Path::new("/usr/bin/busybox")).expect("busybox-static is installed");
        assert_eq!(busybox.interpreter, None);
        assert!(busybox.needed.is_empty());
        assert_eq!(parse(b"\x7fELF\x02\x01"), Err("header cut short"));
        assert_eq!(parse(b"#!/bin/sh\n"), Err("no ELF magic"));
    }
}
