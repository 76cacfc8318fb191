//! ARMv7 zImage layout for `kexec_load`, as a bootloader would place things: the zImage at the
//! start of RAM + 0x8000, then the initramfs and the device tree above the room the kernel
//! needs to decompress itself. The ARM kernel finds the device tree segment by its magic and
//! passes its address in r2, so the tree needs no further mention.

use crate::iomem::Ram;
use crate::segments::{align_up, Layout, Segment};
use crate::{chosen, KexecError};

/// `0x016f2818`, the zImage magic word at offset 0x24 (little-endian).
pub const ZIMAGE_MAGIC: u32 = 0x016f_2818;
const TEXT_OFFSET: u64 = 0x8000;
/// The ARM kernel maps initramfs and device tree through its lowmem direct map, which a 3G/1G
/// split limits to a little under 768 MiB above the start of RAM.
const LOWMEM: u64 = 768 << 20;

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub fn is_zimage(kernel: &[u8]) -> bool {
    le32(kernel, 0x24) == Some(ZIMAGE_MAGIC)
}

/// The zImage's own length from its header (end - start at 0x2c and 0x28), or the file's.
fn zimage_len(kernel: &[u8]) -> Result<u64, KexecError> {
    let (start, end) = (le32(kernel, 0x28), le32(kernel, 0x2c));
    match (start, end) {
        (Some(s), Some(e)) if e > s && (e - s) as usize <= kernel.len() => Ok(u64::from(e - s)),
        (Some(s), Some(e)) => Err(KexecError::Malformed(format!(
            "zImage header says it spans {s:#x}..{e:#x} but the file is {:#x} bytes",
            kernel.len()
        ))),
        _ => Err(KexecError::Malformed(
            "zImage shorter than its header".into(),
        )),
    }
}

/// `KLSZ`, the tag of the kernel-size record in the zImage's table (pointer at 0x38).
const KLSZ: u32 = 0x5a53_4c4b;
/// The decompressor's stack and malloc area and its relocation rounding, above its own copy.
const DECOMPRESSOR_SLACK: u64 = 1 << 20;

/// What the zImage's kernel-size record says: where the kernel is decompressed to (offset
/// from the start of RAM), and how much memory it occupies then (image plus bss).
#[derive(Debug, PartialEq, Eq)]
struct Decompressed {
    text_offset: u64,
    size: u64,
}

/// The zImage's kernel-size record (Linux 3.x and later): a tag `[words, KLSZ, offset of the
/// 32-bit decompressed size in the zImage, bss size, TEXT_OFFSET, malloc size]`, the last two
/// only in six-word records. `None` when the zImage has none.
fn decompressed(kernel: &[u8]) -> Option<Decompressed> {
    if le32(kernel, 0x34) != Some(0x4545_4545) {
        return None;
    }
    let table = le32(kernel, 0x38)? as usize;
    let word = |i: usize| le32(kernel, table.checked_add(i * 4)?);
    let words = word(0)?;
    if word(1)? != KLSZ || words < 4 {
        return None;
    }
    let inflated = le32(kernel, word(2)? as usize)?;
    let bss = word(3)?;
    let text_offset = if words >= 5 { word(4)? } else { 0x8000 };
    Some(Decompressed {
        text_offset: u64::from(text_offset),
        size: u64::from(inflated) + u64::from(bss),
    })
}

/// Where each piece goes, for a zImage of `kernel.len()` bytes in `ram`.
pub fn layout(
    ram: &[Ram],
    kernel: &[u8],
    initramfs: Option<&[u8]>,
    dtb: &[u8],
    command_line: &str,
    page: u64,
) -> Result<Layout, KexecError> {
    let len = zimage_len(kernel)?;
    let bank = ram[0];
    let kernel_at = bank.start + TEXT_OFFSET;
    // The decompressed kernel goes to TEXT_OFFSET above the start of RAM (0x8000, or more on
    // some multi-platform kernels: Debian's armmp uses 0x208000), and when it would overwrite
    // the zImage, the decompressor first copies itself above the decompressed kernel and runs
    // from there. Nothing of ours may lie below the end of that copy. The zImage's size record
    // gives the decompressed size; without one, the kernel is assumed to be at most 4x the
    // zImage, as kexec-tools assumes.
    let (text_offset, size) = match decompressed(kernel) {
        Some(d) => (d.text_offset, d.size),
        None => (
            TEXT_OFFSET,
            len.checked_mul(4).ok_or(KexecError::AddressWidth(len))?,
        ),
    };
    let busy = [text_offset, size, len, DECOMPRESSOR_SLACK]
        .iter()
        .try_fold(bank.start, |acc, v| acc.checked_add(*v))
        .ok_or(KexecError::AddressWidth(bank.start))?;
    let mut next = align_up(busy.max(kernel_at + len), page)?;
    let mut segments = vec![Segment::new(
        "zImage",
        kernel.to_vec(),
        kernel_at,
        len,
        page,
    )?];
    let mut initrd = None;
    if let Some(data) = initramfs {
        let s = Segment::new("initramfs", data.to_vec(), next, data.len() as u64, page)?;
        next = s.end()?;
        // Within the segment, whose end was just checked.
        initrd = Some((s.address, s.address + data.len() as u64));
        segments.push(s);
    }
    let blob = chosen::edit(dtb, command_line, initrd)?;
    let dtb_len = blob.len() as u64;
    segments.push(Segment::new("device tree", blob, next, dtb_len, page)?);
    let layout = Layout {
        entry: kernel_at,
        segments,
    };
    let lowmem = Ram {
        start: bank.start,
        end: bank.end.min(bank.start.saturating_add(LOWMEM)),
    };
    layout.check(&[lowmem])?;
    Ok(layout)
}
