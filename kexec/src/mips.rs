//! MIPS kernels for `kexec_load`: an ELF vmlinux (32-bit, either endian) whose PT_LOAD
//! segments go to their physical addresses, or the legacy uImage a router's firmware
//! partition starts with (one payload at its load address). The command line and initramfs
//! travel twice: in a device tree segment, which kernels built with UHI boot support receive as
//! a0 = -2, a1 = the tree, and as firmware-style argc/argv/envp that [`mips_boot`]'s stub hands
//! to every other kernel (docs/kexec.md: which kernels read which).

use object::elf::{FileHeader32, EM_MIPS, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

use crate::iomem::Ram;
use crate::segments::{align_up, Layout, Segment};
use crate::{chosen, mips_boot, uimage, KexecError};

/// KSEG0 and KSEG1 (0x80000000..0xc0000000) map the low 512 MiB of physical memory
/// unmapped; anything else is taken as physical already.
pub fn physical(address: u32) -> u64 {
    match address {
        0x8000_0000..=0xbfff_ffff => u64::from(address & 0x1fff_ffff),
        a => u64::from(a),
    }
}

pub fn is_elf(kernel: &[u8]) -> bool {
    kernel.starts_with(b"\x7fELF")
}

/// The PT_LOAD segments of a 32-bit MIPS ELF and its physical entry point.
pub fn elf_segments(kernel: &[u8], page: u64) -> Result<Layout, KexecError> {
    let bad = |m: &dyn std::fmt::Display| KexecError::Malformed(format!("ELF: {m}"));
    match kernel.get(4) {
        Some(1) => {}
        Some(2) => return Err(bad(&"64-bit ELF; only 32-bit MIPS kernels are loaded")),
        _ => return Err(bad(&"no 32-bit ELF identification")),
    }
    let header = FileHeader32::<Endianness>::parse(kernel).map_err(|e| bad(&e))?;
    let endian = header.endian().map_err(|e| bad(&e))?;
    let machine = header.e_machine(endian);
    if machine != EM_MIPS {
        return Err(bad(&format!("machine {machine} is not MIPS")));
    }
    let entry = physical(header.e_entry(endian));
    let headers = header
        .program_headers(endian, kernel)
        .map_err(|e| bad(&e))?;
    let mut segments = Vec::new();
    for (i, ph) in headers.iter().enumerate() {
        let memsz = ph.p_memsz(endian);
        if ph.p_type(endian) != PT_LOAD || memsz == 0 {
            continue;
        }
        let filesz = ph.p_filesz(endian);
        if filesz > memsz {
            return Err(bad(&format!("segment {i} has more file than memory")));
        }
        let data = ph.data(endian, kernel).map_err(|()| {
            bad(&format!(
                "segment {i}: {filesz} bytes at {:#x} run past the end",
                ph.p_offset(endian)
            ))
        })?;
        segments.push(paged(
            &format!("ELF segment {i}"),
            data,
            physical(ph.p_paddr(endian)),
            u64::from(memsz),
            page,
        )?);
    }
    if segments.is_empty() {
        return Err(bad(&"no PT_LOAD segment"));
    }
    Ok(Layout { entry, segments })
}

/// A segment starting on the page at or below `address`, padded in front to keep `data` at
/// `address`.
fn paged(
    what: &str,
    data: &[u8],
    address: u64,
    size: u64,
    page: u64,
) -> Result<Segment, KexecError> {
    let pad = address % page;
    let mut v = vec![0; pad as usize];
    v.extend_from_slice(data);
    Segment::new(what, v, address - pad, size + pad, page)
}

/// A uImage's payload at its load address, entered at its entry point.
pub fn uimage_segments(kernel: &[u8], page: u64) -> Result<Layout, KexecError> {
    let image = uimage::parse(kernel)?;
    let load = physical(image.load);
    let data = image.payload()?;
    let len = data.len() as u64;
    let segment = paged("uImage payload", &data, load, len, page)?;
    Ok(Layout {
        entry: physical(image.entry),
        segments: vec![segment],
    })
}

/// Adds the initramfs, with the running device tree a tree carrying the command line and the
/// initramfs (for UHI kernels), and the firmware-style boot arguments with the stub that passes
/// them (for the others), above the kernel's highest segment; checks the whole against `ram`.
/// The stub becomes the entry point; it is written in the byte order `big_endian` says.
pub fn finish(
    mut layout: Layout,
    ram: &[Ram],
    initramfs: Option<&[u8]>,
    dtb: Option<&[u8]>,
    command_line: &str,
    big_endian: bool,
    page: u64,
) -> Result<Layout, KexecError> {
    let mut next = 0;
    for s in &layout.segments {
        next = next.max(s.end()?);
    }
    // Room for the kernel's own early allocations above its image.
    next = align_up(
        next.checked_add(1 << 20)
            .ok_or(KexecError::AddressWidth(next))?,
        page,
    )?;
    let mut initrd = None;
    if let Some(data) = initramfs {
        let s = Segment::new("initramfs", data.to_vec(), next, data.len() as u64, page)?;
        next = s.end()?;
        initrd = Some((s.address, s.address + data.len() as u64));
        layout.segments.push(s);
    }
    if let Some(blob) = dtb {
        let blob = chosen::edit(blob, command_line, initrd)?;
        let len = blob.len() as u64;
        let s = Segment::new("device tree", blob, next, len, page)?;
        next = s.end()?;
        layout.segments.push(s);
    }
    let boot = boot_arguments(
        ram,
        initrd,
        command_line,
        big_endian,
        next,
        layout.entry,
        page,
    )?;
    layout.entry = boot.address;
    layout.segments.push(boot);
    layout.check(ram)?;
    Ok(layout)
}

/// The command line with the initramfs as `rd_start=`/`rd_size=` (how Malta's and other
/// firmware-argument kernels find it), and `memsize` from the RAM's extent.
fn boot_arguments(
    ram: &[Ram],
    initrd: Option<(u64, u64)>,
    command_line: &str,
    big_endian: bool,
    address: u64,
    kernel_entry: u64,
    page: u64,
) -> Result<Segment, KexecError> {
    let mut line = mips_boot::without_initrd_words(command_line);
    if let Some((start, end)) = initrd {
        let words = format!(
            "rd_start={:#x} rd_size={}",
            mips_boot::kseg0(start)?,
            end - start
        );
        line = format!("{line} {words}").trim_start().to_owned();
    }
    let environment: Vec<String> = ram
        .iter()
        .map(|r| r.end)
        .max()
        .map(|top| format!("memsize={top}"))
        .into_iter()
        .collect();
    let args = mips_boot::BootArgs {
        command_line: &line,
        environment: &environment,
        big_endian,
    };
    mips_boot::segment(&args, address, kernel_entry, page)
}
