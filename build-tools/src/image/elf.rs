//! A kernel `vmlinux` (ELF) made into the flat binary U-Boot loads: the file bytes of every
//! loadable segment placed at its physical (load) address relative to the lowest one, gaps
//! zero-filled, nothing of the zero-initialised tail (bss) — what `objcopy -O binary` writes.
//! Headers are read with the `object` crate's ELF reader, 32 or 64 bits, either byte order.

use object::elf::{FileHeader32, FileHeader64, PT_LOAD, SHT_NOBITS};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, FileKind};

/// The flat image and where it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flat {
    pub data: Vec<u8>,
    /// `e_entry`: the virtual address execution starts at.
    pub entry: u64,
    /// Lowest virtual address of a loaded segment (the address `entry` is relative to).
    pub base_vaddr: u64,
    /// Lowest physical address of a loaded segment.
    pub base_paddr: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF file: {0}")]
    NotElf(String),
    #[error("ELF program header {index}: {why}")]
    Segment { index: usize, why: String },
    #[error("the ELF has no loadable segment with file data")]
    Empty,
    #[error("the loaded segments span {0} bytes, more than this packer will lay out (256 MiB)")]
    TooLarge(u64),
    #[error("section {name} holds {size} bytes; the {len} bytes meant for it do not fit")]
    SectionTooSmall { name: String, size: u64, len: usize },
}

/// `\x7fELF`.
pub const MAGIC: &[u8; 4] = b"\x7fELF";
/// Kernels are a few MiB; a span beyond this is a broken header, not a kernel.
const MAX_SPAN: u64 = 256 << 20;

/// Whether `data` starts like an ELF file.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

fn not(e: impl std::fmt::Display) -> ElfError {
    ElfError::NotElf(e.to_string())
}

/// One loadable segment's file bytes and addresses.
struct Load<'a> {
    paddr: u64,
    vaddr: u64,
    bytes: &'a [u8],
}

/// The flat binary of `data`.
pub fn flatten(data: &[u8]) -> Result<Flat, ElfError> {
    match kind(data)? {
        FileKind::Elf32 => flatten_as::<FileHeader32<Endianness>>(data),
        _ => flatten_as::<FileHeader64<Endianness>>(data),
    }
}

fn kind(data: &[u8]) -> Result<FileKind, ElfError> {
    if !is_elf(data) {
        return Err(not("no \\x7fELF magic"));
    }
    // The identification bytes first: object's own errors do not say which one is wrong.
    let kind = match data.get(4) {
        Some(1) => FileKind::Elf32,
        Some(2) => FileKind::Elf64,
        _ => return Err(not("class is neither 32 nor 64 bits")),
    };
    match data.get(5) {
        Some(1 | 2) => Ok(kind),
        _ => Err(not("byte order is neither little nor big endian")),
    }
}

fn flatten_as<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Flat, ElfError> {
    let header = H::parse(data).map_err(not)?;
    let endian = header.endian().map_err(not)?;
    let segments = header.program_headers(endian, data).map_err(not)?;
    let mut loads = Vec::new();
    for (index, s) in segments.iter().enumerate() {
        if s.p_type(endian) != PT_LOAD || s.p_filesz(endian).into() == 0 {
            continue;
        }
        let bytes = s.data(endian, data).map_err(|()| ElfError::Segment {
            index,
            why: format!(
                "data {:#x}+{:#x} runs past the end of the file",
                s.p_offset(endian).into(),
                s.p_filesz(endian).into()
            ),
        })?;
        loads.push(Load {
            paddr: s.p_paddr(endian).into(),
            vaddr: s.p_vaddr(endian).into(),
            bytes,
        });
    }
    lay_out(&loads, header.e_entry(endian).into())
}

fn lay_out(loads: &[Load], entry: u64) -> Result<Flat, ElfError> {
    let base = loads.iter().map(|l| l.paddr).min().ok_or(ElfError::Empty)?;
    let base_vaddr = loads.iter().map(|l| l.vaddr).min().ok_or(ElfError::Empty)?;
    let mut end = 0u64;
    for l in loads {
        let e = (l.paddr - base)
            .checked_add(l.bytes.len() as u64)
            .ok_or(ElfError::TooLarge(u64::MAX))?;
        end = end.max(e);
    }
    if end > MAX_SPAN {
        return Err(ElfError::TooLarge(end));
    }
    let mut data = vec![0u8; end as usize];
    for l in loads {
        let at = (l.paddr - base) as usize;
        data[at..at + l.bytes.len()].copy_from_slice(l.bytes);
    }
    Ok(Flat {
        data,
        entry,
        base_vaddr,
        base_paddr: base,
    })
}

/// Writes `contents` at the start of section `name` (the rest of it zeroed), as `objcopy
/// --update-section` does for contents no larger than the section. Returns whether the ELF has
/// that section; contents larger than it are refused, since the section's size is fixed by the
/// kernel that reserves it.
pub fn fill_section(data: &mut [u8], name: &str, contents: &[u8]) -> Result<bool, ElfError> {
    let found = match kind(data)? {
        FileKind::Elf32 => find_section::<FileHeader32<Endianness>>(data, name)?,
        _ => find_section::<FileHeader64<Endianness>>(data, name)?,
    };
    let Some(range) = found else {
        return Ok(false);
    };
    if contents.len() > range.len() {
        return Err(ElfError::SectionTooSmall {
            name: name.to_owned(),
            size: range.len() as u64,
            len: contents.len(),
        });
    }
    let section = &mut data[range];
    section.fill(0);
    section[..contents.len()].copy_from_slice(contents);
    Ok(true)
}

/// The file bytes of section `name` (one with bytes in the file), checked to lie inside it.
fn find_section<H: FileHeader<Endian = Endianness>>(
    data: &[u8],
    name: &str,
) -> Result<Option<std::ops::Range<usize>>, ElfError> {
    let header = H::parse(data).map_err(not)?;
    let endian = header.endian().map_err(not)?;
    let sections = header.sections(endian, data).map_err(not)?;
    let Some((_, section)) = sections.section_by_name(endian, name.as_bytes()) else {
        return Ok(None);
    };
    if section.sh_type(endian) == SHT_NOBITS {
        return Ok(None);
    }
    let (offset, size): (u64, u64) = (
        section.sh_offset(endian).into(),
        section.sh_size(endian).into(),
    );
    let range = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(size).ok())
        .and_then(|(start, len)| Some(start..start.checked_add(len)?))
        .filter(|r| r.end <= data.len())
        .ok_or_else(|| not("a section runs past the end of the file"))?;
    Ok(Some(range))
}
