//! What can go wrong loading or starting a kernel, in sentences a router's owner can act on.

use std::path::PathBuf;

use rustix::io::Errno;

#[derive(Debug, thiserror::Error)]
pub enum KexecError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the kernel image is none this loader knows ({0})")]
    UnknownKernel(String),
    #[error("the kernel image is malformed: {0}")]
    Malformed(String),
    #[error("{what} is {size:#x} bytes, more than {limit}")]
    TooBig {
        what: String,
        size: u64,
        limit: String,
    },
    #[error("{ROOT_IOMEM} lists no System RAM (reading it needs root: others see zeros)")]
    NoRam,
    #[error("{what} at {start:#x}..{end:#x} lies outside System RAM ({ram})")]
    OutsideRam {
        what: String,
        start: u64,
        end: u64,
        ram: String,
    },
    #[error("segments {first} and {second} overlap at {at:#x}")]
    Overlap {
        first: String,
        second: String,
        at: u64,
    },
    #[error("{count} segments, more than the {max} kexec_load takes")]
    TooManySegments { count: usize, max: usize },
    #[error("address {0:#x} does not fit this CPU's pointers")]
    AddressWidth(u64),
    #[error("the running device tree: {0}")]
    Fdt(#[from] liminix_fdt::DtbError),
    #[error("decompressing the uImage payload ({compression}): {source}")]
    Decompress {
        compression: &'static str,
        source: std::io::Error,
    },
    #[error("the command line holds a NUL byte")]
    NulInCommandLine,
    #[error("staging {what} for kexec_file_load: {source}")]
    Stage {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{call}: {}", explain(call, *errno))]
    Syscall { call: &'static str, errno: Errno },
    #[error("this CPU has no {call} in this build")]
    Unsupported { call: &'static str },
}

pub(crate) const ROOT_IOMEM: &str = "ROOT/proc/iomem";
const DISABLED: &str = "/proc/sys/kernel/kexec_load_disabled";

/// The kernel's refusals, with what each means for kexec.
fn explain(call: &str, errno: Errno) -> String {
    let what = match errno {
        Errno::INVAL if call.starts_with("reboot") => {
            "no kernel is loaded for kexec (load one first)".to_owned()
        }
        Errno::NOSYS => format!("this kernel has no {call} (built without CONFIG_KEXEC or CONFIG_KEXEC_FILE, or the call does not exist on this CPU)"),
        Errno::PERM => format!("kexec is not allowed: the agent needs CAP_SYS_BOOT, and {DISABLED} must read 0 (once 1 it stays 1 until reboot)"),
        Errno::BUSY => "another kexec image is being loaded or executed".to_owned(),
        Errno::INVAL => "the kernel refused the image or its segments as invalid; on SMP MIPS kernels whose platform cannot park the other CPUs (no kexec_nonboot_cpu, e.g. Malta's) it refuses every image".to_owned(),
        Errno::NOEXEC => "the kernel does not recognise the image format (kexec_file_load takes bzImage on x86_64, Image on arm64) or its signature".to_owned(),
        Errno::KEYREJECTED | Errno::NOKEY => "the image's signature was rejected (kernel lockdown or KEXEC_SIG)".to_owned(),
        Errno::ADDRNOTAVAIL => "a segment lies beyond the memory the kernel can reach".to_owned(),
        Errno::NOMEM => "the kernel has not enough memory to hold the image".to_owned(),
        e => format!("failed: {e}"),
    };
    format!("{what} ({})", name(errno))
}

/// The C name of the errnos the kernel's kexec code returns, else the system's words.
fn name(errno: Errno) -> String {
    let known = [
        (Errno::NOSYS, "ENOSYS"),
        (Errno::PERM, "EPERM"),
        (Errno::BUSY, "EBUSY"),
        (Errno::INVAL, "EINVAL"),
        (Errno::NOEXEC, "ENOEXEC"),
        (Errno::KEYREJECTED, "EKEYREJECTED"),
        (Errno::NOKEY, "ENOKEY"),
        (Errno::ADDRNOTAVAIL, "EADDRNOTAVAIL"),
        (Errno::NOMEM, "ENOMEM"),
    ];
    known
        .iter()
        .find(|(e, _)| *e == errno)
        .map_or_else(|| errno.to_string(), |(_, n)| (*n).to_owned())
}
