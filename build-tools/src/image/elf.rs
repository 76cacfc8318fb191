//! A kernel `vmlinux` (ELF) made into the flat binary U-Boot loads: the file bytes of every
//! loadable segment placed at its physical (load) address relative to the lowest one, gaps
//! zero-filled, nothing of the zero-initialised tail (bss) — what `objcopy -O binary` writes.
//! Read natively: the ELF and program headers are a few fixed fields, 32 or 64 bits, either
//! byte order, and the packer needs nothing else of the format.

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
const PT_LOAD: u64 = 1;
/// Kernels are a few MiB; a span beyond this is a broken header, not a kernel.
const MAX_SPAN: u64 = 256 << 20;

/// Whether `data` starts like an ELF file.
pub fn is_elf(data: &[u8]) -> bool {
    data.starts_with(MAGIC)
}

struct Reader<'a> {
    data: &'a [u8],
    big: bool,
    wide: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        let at = usize::try_from(at).ok()?;
        self.data.get(at..at.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, at: u64) -> Option<u64> {
        let b = self.bytes::<2>(at)?;
        Some(u64::from(if self.big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }))
    }
    fn u32(&self, at: u64) -> Option<u64> {
        let b = self.bytes::<4>(at)?;
        Some(u64::from(if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }))
    }
    fn u64(&self, at: u64) -> Option<u64> {
        let b = self.bytes::<8>(at)?;
        Some(if self.big {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }
    /// An address or offset field: 4 bytes in ELF32, 8 in ELF64.
    fn word(&self, at: u64) -> Option<u64> {
        if self.wide {
            self.u64(at)
        } else {
            self.u32(at)
        }
    }
}

/// One loadable segment's file bytes and addresses.
struct Load<'a> {
    paddr: u64,
    vaddr: u64,
    bytes: &'a [u8],
}

/// The flat binary of `data`.
pub fn flatten(data: &[u8]) -> Result<Flat, ElfError> {
    let not = |why: &str| ElfError::NotElf(why.to_owned());
    if !is_elf(data) {
        return Err(not("no \\x7fELF magic"));
    }
    let wide = match data.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(not("class is neither 32 nor 64 bits")),
    };
    let big = match data.get(5) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(not("byte order is neither little nor big endian")),
    };
    let r = Reader { data, big, wide };
    let short = || not("header runs past the end of the file");
    let (entry, phoff, phentsize, phnum) = match wide {
        false => (r.u32(24), r.u32(28), r.u16(42), r.u16(44)),
        true => (r.u64(24), r.u64(32), r.u16(54), r.u16(56)),
    };
    let (entry, phoff) = (entry.ok_or_else(short)?, phoff.ok_or_else(short)?);
    let (phentsize, phnum) = (phentsize.ok_or_else(short)?, phnum.ok_or_else(short)?);
    let mut loads = Vec::new();
    for index in 0..phnum as usize {
        let at = phoff
            .checked_add(index as u64 * phentsize)
            .ok_or_else(short)?;
        if let Some(l) = segment(&r, at).map_err(|why| ElfError::Segment { index, why })? {
            loads.push(l);
        }
    }
    lay_out(&loads, entry)
}

fn segment<'a>(r: &Reader<'a>, at: u64) -> Result<Option<Load<'a>>, String> {
    let short = || "runs past the end of the file".to_owned();
    let kind = r.u32(at).ok_or_else(short)?;
    // ELF64 moves p_flags up front, so the other fields sit at different offsets.
    let (off, vaddr, paddr, filesz) = match r.wide {
        false => (
            r.word(at + 4),
            r.word(at + 8),
            r.word(at + 12),
            r.word(at + 16),
        ),
        true => (
            r.word(at + 8),
            r.word(at + 16),
            r.word(at + 24),
            r.word(at + 32),
        ),
    };
    let (off, vaddr) = (off.ok_or_else(short)?, vaddr.ok_or_else(short)?);
    let (paddr, filesz) = (paddr.ok_or_else(short)?, filesz.ok_or_else(short)?);
    if kind != PT_LOAD || filesz == 0 {
        return Ok(None);
    }
    let end = off.checked_add(filesz).ok_or_else(short)?;
    let bytes = usize::try_from(off)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(a, b)| r.data.get(a..b))
        .ok_or_else(|| format!("data {off:#x}+{filesz:#x} runs past the end of the file"))?;
    Ok(Some(Load {
        paddr,
        vaddr,
        bytes,
    }))
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

/// `SHT_NOBITS`: a section with no bytes in the file.
const SHT_NOBITS: u64 = 8;

/// Writes `contents` at the start of section `name` (the rest of it zeroed), as `objcopy
/// --update-section` does for contents no larger than the section. Returns whether the ELF has
/// that section; contents larger than it are refused, since the section's size is fixed by the
/// kernel that reserves it.
pub fn fill_section(data: &mut [u8], name: &str, contents: &[u8]) -> Result<bool, ElfError> {
    let Some((offset, size)) = find_section(data, name)? else {
        return Ok(false);
    };
    if contents.len() as u64 > size {
        return Err(ElfError::SectionTooSmall {
            name: name.to_owned(),
            size,
            len: contents.len(),
        });
    }
    let (start, end) = (offset as usize, (offset + size) as usize);
    let section = &mut data[start..end];
    section.fill(0);
    section[..contents.len()].copy_from_slice(contents);
    Ok(true)
}

/// File offset and size of section `name`, checked to lie inside the file.
fn find_section(data: &[u8], name: &str) -> Result<Option<(u64, u64)>, ElfError> {
    let not = |why: &str| ElfError::NotElf(why.to_owned());
    if !is_elf(data) {
        return Err(not("no \\x7fELF magic"));
    }
    let r = Reader {
        data,
        big: data.get(5) == Some(&2),
        wide: data.get(4) == Some(&2),
    };
    let short = || not("section headers run past the end of the file");
    let (shoff, entsize, num, strndx) = match r.wide {
        false => (r.u32(32), r.u16(46), r.u16(48), r.u16(50)),
        true => (r.u64(40), r.u16(58), r.u16(60), r.u16(62)),
    };
    let (shoff, entsize) = (shoff.ok_or_else(short)?, entsize.ok_or_else(short)?);
    let (num, strndx) = (num.ok_or_else(short)?, strndx.ok_or_else(short)?);
    let header = |i: u64| -> Option<(u64, u64, u64, u64)> {
        let at = shoff.checked_add(i.checked_mul(entsize)?)?;
        let (off, size) = match r.wide {
            false => (r.word(at + 16)?, r.word(at + 20)?),
            true => (r.word(at + 24)?, r.word(at + 32)?),
        };
        Some((r.u32(at)?, r.u32(at + 4)?, off, size))
    };
    let (_, _, str_off, str_size) = header(strndx).ok_or_else(short)?;
    for i in 0..num {
        let (name_at, kind, off, size) = header(i).ok_or_else(short)?;
        let found = str_off
            .checked_add(name_at)
            .filter(|&at| name_at < str_size && at < data.len() as u64)
            .map(|at| &data[at as usize..])
            .is_some_and(|s| s.starts_with(name.as_bytes()) && s.get(name.len()) == Some(&0));
        if !found || kind == SHT_NOBITS {
            continue;
        }
        let end = off.checked_add(size).filter(|&e| e <= data.len() as u64);
        return match end {
            Some(_) => Ok(Some((off, size))),
            None => Err(not("a section runs past the end of the file")),
        };
    }
    Ok(None)
}
