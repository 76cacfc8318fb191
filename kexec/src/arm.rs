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
    // The decompressed kernel starts where the zImage sits, so the zImage first copies itself
    // above the end of the decompressed kernel. Without the zImage's size tags that end is
    // unknown; kexec-tools assumes the kernel is at most 4x its compressed size, and the
    // copy of the zImage needs one size more: nothing of ours may lie in those 5 sizes.
    let room = len.checked_mul(5).ok_or(KexecError::AddressWidth(len))?;
    let mut next = align_up(
        kernel_at
            .checked_add(room)
            .ok_or(KexecError::AddressWidth(room))?,
        page,
    )?;
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
