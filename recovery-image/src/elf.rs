//! What a dynamically linked program asks of the loader: its interpreter (`PT_INTERP`), the
//! libraries it names (`DT_NEEDED`) and where it says to look (`DT_RUNPATH`, `DT_RPATH`). Read
//! from the program headers of the file itself (the `object` crate's ELF reader), for every
//! byte order and word size, so that a MIPS router's dropbear is read the same on the router
//! and on an x86_64 build host (where `ldd` could not run it). Section headers are not used:
//! stripped programs may lack them, the loader never reads them.

use std::path::Path;

use object::elf::{FileHeader32, FileHeader64, DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH};
use object::elf::{DT_STRTAB, PT_LOAD};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

use crate::RecoveryError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynamic {
    /// `e_machine`: libraries must have the program's.
    pub machine: u16,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    /// RUNPATH, or RPATH when there is no RUNPATH (the loader's own rule), split at `:`.
    pub search: Vec<String>,
}

/// Reads the dynamic-linking needs of the ELF file `path`; a static program has none.
pub fn read(path: &Path) -> Result<Dynamic, RecoveryError> {
    let data = std::fs::read(path).map_err(RecoveryError::io("reading", path))?;
    parse(&data).map_err(|reason| RecoveryError::Elf {
        path: path.to_path_buf(),
        reason,
    })
}

/// [`read`] on bytes; the error says what is wrong.
pub fn parse(data: &[u8]) -> Result<Dynamic, String> {
    match FileKind::parse(data) {
        Ok(FileKind::Elf32) => needs::<FileHeader32<Endianness>>(data),
        Ok(FileKind::Elf64) => needs::<FileHeader64<Endianness>>(data),
        _ => Err("not an ELF file".into()),
    }
}

fn needs<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Dynamic, String> {
    let header = H::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let segments = header
        .program_headers(endian, data)
        .map_err(|e| e.to_string())?;
    let mut out = Dynamic {
        machine: header.e_machine(endian),
        ..Dynamic::default()
    };
    for s in segments {
        if let Some(interp) = s.interpreter(endian, data).map_err(|e| e.to_string())? {
            out.interpreter = Some(utf8(interp)?);
        }
        if let Some(entries) = s.dynamic(endian, data).map_err(|e| e.to_string())? {
            let tags: Vec<(u64, u64)> = entries
                .iter()
                .map(|d| (d.d_tag(endian).into(), d.d_val(endian).into()))
                .take_while(|&(tag, _)| tag != u64::from(DT_NULL))
                .collect();
            libraries::<H>(endian, data, segments, &tags, &mut out)?;
        }
    }
    Ok(out)
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a name is not UTF-8".into())
}

/// DT_NEEDED and the search path, their strings found through the load segment holding
/// DT_STRTAB's address.
fn libraries<H: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    data: &[u8],
    segments: &[H::ProgramHeader],
    tags: &[(u64, u64)],
    out: &mut Dynamic,
) -> Result<(), String> {
    let bad = || "bad dynamic section".to_owned();
    let strtab = tags
        .iter()
        .find(|(t, _)| *t == u64::from(DT_STRTAB))
        .ok_or_else(bad)?
        .1;
    let table = segments
        .iter()
        .filter(|s| s.p_type(endian) == PT_LOAD)
        .find_map(|s| {
            s.data_range(endian, data, strtab, 1)
                .ok()
                .flatten()
                .map(|_| s)
        })
        .ok_or_else(bad)?;
    let file = table.data(endian, data).map_err(|_| bad())?;
    let start = strtab - table.p_vaddr(endian).into();
    let string = |off: u64| -> Result<String, String> {
        let at = start.checked_add(off).and_then(|a| usize::try_from(a).ok());
        let rest = at.and_then(|a| file.get(a..)).ok_or_else(bad)?;
        let end = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
        utf8(&rest[..end])
    };
    let mut rpath = Vec::new();
    let mut runpath = Vec::new();
    for &(tag, val) in tags {
        match u32::try_from(tag) {
            Ok(DT_NEEDED) => out.needed.push(string(val)?),
            Ok(DT_RPATH) => rpath.push(string(val)?),
            Ok(DT_RUNPATH) => runpath.push(string(val)?),
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
    Ok(())
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
        assert!(parse(b"\x7fELF\x02\x01").is_err());
        assert_eq!(parse(b"#!/bin/sh\n"), Err("not an ELF file".into()));
        // A 64-bit header whose program headers lie past the end.
        let mut cut = std::fs::read("/usr/bin/busybox").unwrap()[..64].to_vec();
        cut[32..40].copy_from_slice(&0x7fff_ffffu64.to_le_bytes());
        assert!(parse(&cut).is_err());
    }
}
