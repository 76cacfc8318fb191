//! Booting another kernel from the running one (kexec), without kexec-tools.
//!
//! Where the kernel lays out the image itself (`kexec_file_load`, x86_64) the kernel and
//! initramfs are handed over as file descriptors. Elsewhere (32-bit ARM and MIPS have only
//! `kexec_load`) the segments are laid out here: [`arm`] for zImage with a device tree, [`mips`]
//! for ELF vmlinux and legacy uImage. Every system file is read below a root directory
//! (`ROOT/proc/iomem`, `ROOT/sys/firmware/fdt`, `ROOT/proc/cmdline`) so tests can supply their
//! own. All `unsafe` is in the private `sys` module. docs/kexec.md describes the layouts.

pub mod arm;
mod chosen;
mod error;
pub mod iomem;
pub mod mips;
pub mod mips_boot;
pub mod segments;
pub mod syscalls;
pub mod uimage;

#[allow(unsafe_code)]
mod sys;

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

pub use error::KexecError;
pub use segments::{Layout, Segment};

/// What to boot: a kernel image, an optional initramfs and the command line.
#[derive(Clone, Debug, Default)]
pub struct BootSpec {
    pub kernel: Vec<u8>,
    pub initramfs: Option<Vec<u8>>,
    pub command_line: String,
}

/// The kinds of kernel image told apart by their bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// x86 bzImage (`HdrS` at 0x202).
    BzImage,
    ArmZImage,
    MipsElf,
    UImage,
}

impl KernelFormat {
    pub fn name(self) -> &'static str {
        match self {
            KernelFormat::BzImage => "bzImage",
            KernelFormat::ArmZImage => "zImage",
            KernelFormat::MipsElf => "ELF",
            KernelFormat::UImage => "uImage",
        }
    }
}

/// The format of `kernel`, or a refusal naming its first bytes.
pub fn detect(kernel: &[u8]) -> Result<KernelFormat, KexecError> {
    if kernel.get(0x202..0x206) == Some(b"HdrS") {
        Ok(KernelFormat::BzImage)
    } else if arm::is_zimage(kernel) {
        Ok(KernelFormat::ArmZImage)
    } else if mips::is_elf(kernel) {
        Ok(KernelFormat::MipsElf)
    } else if uimage::is_uimage(kernel) {
        Ok(KernelFormat::UImage)
    } else {
        let head: Vec<String> = kernel.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Err(KexecError::UnknownKernel(format!(
            "starts with {}; expected bzImage, ARM zImage, MIPS ELF or uImage",
            head.join(" ")
        )))
    }
}

/// How the image was handed to the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// `kexec_file_load`: the kernel placed it.
    File,
    /// `kexec_load` with these segments.
    Segments(Layout),
}

/// A kernel loaded and ready for [`execute`].
#[derive(Clone, Debug)]
pub struct Loaded {
    pub format: KernelFormat,
    pub method: Method,
    pub command_line: String,
}

fn read(root: &Path, rel: &str) -> Result<Vec<u8>, KexecError> {
    let path = root.join(rel);
    std::fs::read(&path).map_err(|source| KexecError::Read { path, source })
}

/// The running kernel's command line (`ROOT/proc/cmdline`), without its newline.
pub fn running_command_line(root: &Path) -> Result<String, KexecError> {
    let v = read(root, "proc/cmdline")?;
    Ok(String::from_utf8_lossy(&v)
        .trim_end_matches('\n')
        .to_owned())
}

/// The running command line carried over to the next kernel, with `extra` words after it.
pub fn carried_command_line(root: &Path, extra: Option<&str>) -> Result<String, KexecError> {
    let running = running_command_line(root)?;
    Ok(match extra {
        Some(extra) => format!("{running} {extra}").trim().to_owned(),
        None => running,
    })
}

/// Lays out `spec` for `kexec_load` on this machine (RAM from `ROOT/proc/iomem`, the device
/// tree from `ROOT/sys/firmware/fdt`) without loading it.
pub fn plan(root: &Path, spec: &BootSpec, format: KernelFormat) -> Result<Layout, KexecError> {
    if spec.command_line.contains('\0') {
        return Err(KexecError::NulInCommandLine);
    }
    let iomem = read(root, "proc/iomem")?;
    let ram = iomem::system_ram(&String::from_utf8_lossy(&iomem))?;
    let page = sys::page_size();
    let initramfs = spec.initramfs.as_deref();
    match format {
        KernelFormat::ArmZImage => {
            let dtb = read(root, "sys/firmware/fdt")?;
            arm::layout(
                &ram,
                &spec.kernel,
                initramfs,
                &dtb,
                &spec.command_line,
                page,
            )
        }
        KernelFormat::MipsElf | KernelFormat::UImage => {
            let layout = match format {
                KernelFormat::MipsElf => mips::elf_segments(&spec.kernel, page)?,
                _ => mips::uimage_segments(&spec.kernel, page)?,
            };
            let dtb = match read(root, "sys/firmware/fdt") {
                Ok(b) => Some(b),
                Err(KexecError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    None
                }
                Err(e) => return Err(e),
            };
            mips::finish(
                layout,
                &ram,
                initramfs,
                dtb.as_deref(),
                &spec.command_line,
                cfg!(target_endian = "big"),
                page,
            )
        }
        KernelFormat::BzImage => Err(KexecError::Unsupported {
            call: "kexec_load of a bzImage (only kexec_file_load takes one)",
        }),
    }
}

/// Loads `spec` for the next [`execute`]: through `kexec_file_load` where this CPU uses it,
/// else through `kexec_load` with the segments [`plan`] lays out.
pub fn load(root: &Path, spec: &BootSpec) -> Result<Loaded, KexecError> {
    let format = detect(&spec.kernel)?;
    let method = if syscalls::file_load_native() {
        file_load(spec)?;
        Method::File
    } else {
        let layout = plan(root, spec, format)?;
        load_segments(&layout)?;
        Method::Segments(layout)
    };
    Ok(Loaded {
        format,
        method,
        command_line: spec.command_line.clone(),
    })
}

fn memfd(what: &'static str, data: &[u8]) -> Result<OwnedFd, KexecError> {
    let stage = |source| KexecError::Stage { what, source };
    let fd = rustix::fs::memfd_create(what, rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| stage(e.into()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(data).map_err(stage)?;
    Ok(file.into())
}

fn file_load(spec: &BootSpec) -> Result<(), KexecError> {
    let cmdline =
        CString::new(spec.command_line.as_str()).map_err(|_| KexecError::NulInCommandLine)?;
    let kernel = memfd("kernel", &spec.kernel)?;
    let initrd = spec
        .initramfs
        .as_deref()
        .map(|d| memfd("initramfs", d))
        .transpose()?;
    sys::kexec_file_load(kernel.as_fd(), initrd.as_ref().map(|f| f.as_fd()), &cmdline)
}

fn to_usize(v: u64) -> Result<usize, KexecError> {
    usize::try_from(v).map_err(|_| KexecError::AddressWidth(v))
}

fn load_segments(layout: &Layout) -> Result<(), KexecError> {
    let raw = layout
        .segments
        .iter()
        .map(|s| {
            Ok(sys::RawSegment::new(
                &s.data,
                to_usize(s.address)?,
                to_usize(s.size)?,
            ))
        })
        .collect::<Result<Vec<_>, KexecError>>()?;
    sys::kexec_load(to_usize(layout.entry)?, &raw, 0)
}

/// Writes back every file system's dirty data, then jumps into the loaded kernel. Returns only
/// when the kernel refused (nothing loaded, or not allowed).
pub fn execute(loaded: Loaded) -> Result<Infallible, KexecError> {
    drop(loaded);
    execute_loaded()
}

/// [`execute`] for a kernel loaded earlier, by this process or another.
pub fn execute_loaded() -> Result<Infallible, KexecError> {
    rustix::fs::sync();
    let call = "reboot(LINUX_REBOOT_CMD_KEXEC)";
    match rustix::system::reboot(rustix::system::RebootCommand::Kexec) {
        Err(errno) => Err(KexecError::Syscall { call, errno }),
        Ok(()) => Err(KexecError::Syscall {
            call,
            errno: rustix::io::Errno::NOEXEC,
        }),
    }
}

/// Forgets a loaded kernel (`kexec_load` with no segments).
pub fn unload() -> Result<(), KexecError> {
    sys::kexec_load(0, &[], 0)
}
