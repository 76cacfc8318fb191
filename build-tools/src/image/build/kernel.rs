//! The kernel file a board's U-Boot boots, made from `--kernel` (a `vmlinux` ELF, or the
//! zImage/Image the kernel build made) as `[boot]` says: a uImage or a FIT (payload compressed,
//! board addresses), or the zImage/Image as it is.

use liminix_boards::{Boot, Cpu, KernelCompression, KernelFormat};

use super::BuildError;
use crate::image::dtb;
use crate::image::tftpboot::BootCommand;
use crate::image::{compress, elf, fit, uimage, Arch, Compression, Payload};

/// The kernel as U-Boot is given it.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub file: Vec<u8>,
    /// Its name in the outputs (`kernel.uimage`, `kernel.itb`, `zImage`, `Image`).
    pub file_name: &'static str,
    pub boot: BootCommand,
    pub arch: Arch,
}

pub fn arch(cpu: Option<Cpu>) -> Result<Arch, BuildError> {
    match cpu {
        Some(Cpu::Mips | Cpu::Mipsel) => Ok(Arch::Mips),
        Some(Cpu::Armv7) => Ok(Arch::Arm),
        Some(Cpu::Aarch64) => Ok(Arch::Arm64),
        Some(Cpu::X86_64) | None => Err(BuildError::Input(
            "the board names no cpu U-Boot images are made for (mips, mipsel, armv7, aarch64)"
                .into(),
        )),
    }
}

fn compression(c: KernelCompression) -> Compression {
    match c {
        KernelCompression::None => Compression::None,
        KernelCompression::Gzip => Compression::Gzip,
        KernelCompression::Lzma => Compression::Lzma,
    }
}

/// What the kernel input holds, ready for a header: flat binary and entry point.
fn flat(input: &[u8], boot: &Boot) -> Result<(Vec<u8>, u32), BuildError> {
    let to32 = |what: &str, v: u64| {
        u32::try_from(v)
            .map_err(|_| BuildError::Input(format!("kernel {what} {v:#x} does not fit 32 bits")))
    };
    if !elf::is_elf(input) {
        return Ok((input.to_vec(), to32("entry", boot.entry_point)?));
    }
    let f = elf::flatten(input)?;
    // A 32-bit MIPS kernel's addresses may be sign-extended to 64 bits in an ELF64 vmlinux.
    let low = |v: u64| v & 0xffff_ffff;
    let (entry, base) = (low(f.entry), low(f.base_vaddr));
    let end = base + f.data.len() as u64;
    if entry < base || entry >= end {
        return Err(BuildError::Input(format!(
            "the ELF entry point {entry:#x} lies outside its loaded image {base:#x}..{end:#x}"
        )));
    }
    if base != boot.load_address {
        return Err(BuildError::Input(format!(
            "the vmlinux is linked to run at {base:#x} but the board loads the kernel at {:#x}",
            boot.load_address
        )));
    }
    Ok((f.data, to32("entry", entry)?))
}

/// The kernel file for `boot`, with `fdt` (already carrying the command line) in a FIT.
pub fn make(
    cpu: Option<Cpu>,
    boot: &Boot,
    input: &[u8],
    fdt: Option<&[u8]>,
    time: u32,
) -> Result<Kernel, BuildError> {
    let arch = arch(cpu)?;
    let as_is = |file_name, boot_cmd| {
        if elf::is_elf(input) {
            return Err(BuildError::Input(format!(
                "the board boots a {file_name} as the kernel build makes it; --kernel is an ELF vmlinux"
            )));
        }
        Ok(Kernel {
            file: input.to_vec(),
            file_name,
            boot: boot_cmd,
            arch,
        })
    };
    match boot.kernel_format {
        KernelFormat::Zimage => as_is("zImage", BootCommand::Bootz),
        KernelFormat::Image => as_is("Image", BootCommand::Booti),
        KernelFormat::Uimage => {
            let with_dtb = appended_dtb(input, fdt)?;
            let (data, entry) = flat(with_dtb.as_deref().unwrap_or(input), boot)?;
            let comp = compression(boot.compression);
            let payload = compress(&data, comp)?;
            let header = uimage::Header {
                name: format!("{} Liminix Linux", arch.fit_name().to_uppercase()),
                arch,
                payload: Payload::Kernel,
                compression: comp,
                load: load32(boot)?,
                entry,
                time,
            };
            Ok(Kernel {
                file: uimage::write(&header, &payload)?,
                file_name: "kernel.uimage",
                boot: BootCommand::Bootm,
                arch,
            })
        }
        KernelFormat::Fit => {
            let fdt = fdt.ok_or_else(|| {
                BuildError::Input("the board boots a FIT, which holds the DTB: give --dtb".into())
            })?;
            let (data, entry) = flat(input, boot)?;
            let comp = compression(boot.compression);
            let payload = compress(&data, comp)?;
            let file = fit::write(&fit::Fit {
                description: "Liminix kernel and device tree",
                arch,
                time,
                kernel: fit::Kernel {
                    data: &payload,
                    compression: comp,
                    load: load32(boot)?,
                    entry,
                },
                fdt,
                hashes: &[fit::Hash::Sha256],
            })?;
            Ok(Kernel {
                file,
                file_name: "kernel.itb",
                boot: BootCommand::Bootm,
                arch,
            })
        }
    }
}

/// MIPS kernels built with an appended DTB reserve the section `.appended_dtb` for it; Liminix
/// puts the board's DTB (with the command line) there before `objcopy`. A vmlinux without the
/// section keeps the DTB it was built with. `None`: nothing to change.
fn appended_dtb(input: &[u8], fdt: Option<&[u8]>) -> Result<Option<Vec<u8>>, BuildError> {
    let Some(fdt) = fdt.filter(|_| elf::is_elf(input)) else {
        return Ok(None);
    };
    let mut copy = input.to_vec();
    Ok(elf::fill_section(&mut copy, APPENDED_DTB, fdt)?.then_some(copy))
}

/// The section MIPS kernels reserve for a DTB (`CONFIG_MIPS_ELF_APPENDED_DTB`).
pub const APPENDED_DTB: &str = ".appended_dtb";

fn load32(boot: &Boot) -> Result<u32, BuildError> {
    u32::try_from(boot.load_address).map_err(|_| {
        BuildError::Input(format!(
            "load address {:#x} does not fit 32 bits",
            boot.load_address
        ))
    })
}

/// The board's DTB with the full command line in the `/chosen` property the board reads.
pub fn dtb_with_command_line(
    blob: &[u8],
    boot: &Boot,
    command_line: &str,
) -> Result<Vec<u8>, BuildError> {
    let mut tree = dtb::read(blob)?;
    dtb::set_chosen(&mut tree, boot.chosen_property.as_str(), command_line)?;
    Ok(dtb::write(&tree)?)
}
