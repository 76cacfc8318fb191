//! Where the kernel runs, as opposed to where its file is loaded: a legacy uImage is copied
//! (or decompressed) to its load address, a zImage decompresses itself to the start of its
//! 128 MiB of RAM, an arm64 Image is moved to a 2 MiB boundary and needs room for its BSS.
//! These are the ranges the root filesystem and the DTB must stay out of.

use super::{BootCommand, TftpbootError};
use crate::image::{uimage, Compression};

/// `(what, start, end)` of each range the kernel writes while it starts.
pub type Run = (&'static str, u64, u64);

/// The zImage header: magic at 0x24, the extension table's magic and offset at 0x34 and 0x38.
const ZIMAGE_MAGIC: u32 = 0x016f_2818;
const ZIMAGE_TABLE_MAGIC: u32 = 0x4545_4545;
/// The table entry giving the decompressed size's offset and the BSS size ("KLSZ").
const ZIMAGE_SIZE_TAG: u32 = 0x5a53_4c4b;
/// A multiplatform zImage decompresses to this offset in the 128 MiB block it runs in.
const TEXT_OFFSET: u64 = 0x8000;
const ZRELADDR_MASK: u64 = 0xf800_0000;

/// The arm64 Image header's magic ("ARM\x64" at 0x38) and its position-independent flag.
const ARM64_MAGIC: u32 = 0x644d_5241;
const ARM64_ANYWHERE: u64 = 1 << 3;

pub fn running_kernel(
    boot: BootCommand,
    kernel: &[u8],
    at: u64,
) -> Result<Vec<Run>, TftpbootError> {
    let bad = |why: String| TftpbootError::Kernel { boot, why };
    match boot {
        BootCommand::Bootm => bootm(kernel).map_err(bad),
        BootCommand::Bootz => zimage(kernel, at).map_err(bad),
        BootCommand::Booti => arm64(kernel, at).map_err(bad),
    }
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(le32(b, at)?) | u64::from(le32(b, at + 4)?) << 32)
}

fn span(what: &'static str, start: u64, len: u64) -> Result<Run, String> {
    let end = start
        .checked_add(len)
        .ok_or_else(|| format!("{what} at {start:#x} + {len:#x} overflows"))?;
    Ok((what, start, end))
}

/// A legacy uImage runs at its load address; a compressed one is at least as long there as
/// its payload (the decompressed size is not in the header). A FIT names its own load
/// addresses per image and is not checked here.
fn bootm(kernel: &[u8]) -> Result<Vec<Run>, String> {
    if kernel.get(..4) == Some(&0xd00d_feed_u32.to_be_bytes()[..]) {
        return Ok(Vec::new());
    }
    let (header, data) = uimage::read(kernel).map_err(|e| e.to_string())?;
    let what = match header.compression {
        Compression::None => "the uImage kernel at its load address",
        _ => "the uImage kernel (at least its compressed size) at its load address",
    };
    Ok(vec![span(what, header.load.into(), data.len() as u64)?])
}

fn zimage(kernel: &[u8], at: u64) -> Result<Vec<Run>, String> {
    if le32(kernel, 0x24) != Some(ZIMAGE_MAGIC) {
        return Err("no zImage magic at offset 0x24".into());
    }
    // Older zImages have no table: their decompressed size is not findable from the header.
    if le32(kernel, 0x34) != Some(ZIMAGE_TABLE_MAGIC) {
        return Ok(Vec::new());
    }
    let table = le32(kernel, 0x38).ok_or("header ends early")? as usize;
    let tag = le32(kernel, table + 4);
    if tag != Some(ZIMAGE_SIZE_TAG) {
        return Ok(Vec::new());
    }
    let size_at = le32(kernel, table + 8).ok_or("table runs past the end")? as usize;
    let bss = le32(kernel, table + 12).ok_or("table runs past the end")?;
    let inflated = le32(kernel, size_at).ok_or("decompressed size is past the end")?;
    let start = (at & ZRELADDR_MASK) + TEXT_OFFSET;
    let len = u64::from(inflated) + u64::from(bss);
    Ok(vec![span("the decompressed zImage kernel", start, len)?])
}

fn arm64(kernel: &[u8], at: u64) -> Result<Vec<Run>, String> {
    if le32(kernel, 0x38) != Some(ARM64_MAGIC) {
        return Err("no arm64 Image magic at offset 0x38".into());
    }
    let text_offset = le64(kernel, 8).ok_or("header ends early")?;
    let size = le64(kernel, 16).ok_or("header ends early")?;
    let flags = le64(kernel, 24).ok_or("header ends early")?;
    // Without the flag U-Boot moves the Image to the start of RAM, which is not known here.
    if flags & ARM64_ANYWHERE == 0 {
        return Ok(Vec::new());
    }
    let base = at
        .checked_sub(text_offset)
        .and_then(|b| b.checked_next_multiple_of(2 << 20))
        .ok_or("text offset does not fit the address")?;
    Ok(vec![span(
        "the arm64 kernel with its BSS",
        base + text_offset,
        size,
    )?])
}
