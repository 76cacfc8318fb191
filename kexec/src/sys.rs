//! The only place in this crate that makes raw system calls: `kexec_load` and
//! `kexec_file_load`, which neither rustix nor libc wrap. Numbers come from [`crate::syscalls`].

use std::ffi::{c_int, c_long, c_ulong, c_void, CStr};
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;

use crate::syscalls::{native, numbers};
use crate::KexecError;

/// `struct kexec_segment` of `include/uapi/linux/kexec.h`: four pointer-sized fields, so its
/// layout follows the CPU's pointer width (16 bytes on 32-bit, 32 on 64-bit).
#[repr(C)]
pub struct RawSegment {
    buf: *const c_void,
    bufsz: usize,
    mem: usize,
    memsz: usize,
}
const _: () = assert!(size_of::<RawSegment>() == 4 * size_of::<usize>());

/// `KEXEC_FILE_NO_INITRAMFS`.
pub const FILE_NO_INITRAMFS: c_ulong = 4;

impl RawSegment {
    /// A segment pointing into `data`, which must outlive the call it is passed to.
    pub fn new(data: &[u8], mem: usize, memsz: usize) -> Self {
        RawSegment {
            buf: data.as_ptr().cast(),
            bufsz: data.len(),
            mem,
            memsz,
        }
    }
}

fn number(call: &'static str, n: Option<i64>) -> Result<c_long, KexecError> {
    n.and_then(|n| c_long::try_from(n).ok())
        .ok_or(KexecError::Unsupported { call })
}

fn check(call: &'static str, rc: c_long) -> Result<(), KexecError> {
    if rc == -1 {
        let errno = Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO);
        return Err(KexecError::Syscall { call, errno });
    }
    Ok(())
}

/// `kexec_load(entry, nr_segments, segments, flags)`; no segments unloads.
pub fn kexec_load(entry: usize, segments: &[RawSegment], flags: c_ulong) -> Result<(), KexecError> {
    let call = "kexec_load";
    let nr = number(call, native().map(|a| numbers(a).kexec_load))?;
    let ptr = if segments.is_empty() {
        std::ptr::null()
    } else {
        segments.as_ptr()
    };
    // SAFETY: kexec_load only reads `segments.len()` entries at `ptr`, each pointing into a
    // buffer of `bufsz` bytes that the caller keeps alive (RawSegment::new borrows it); the
    // kernel copies everything before returning.
    let rc = unsafe { libc::syscall(nr, entry, segments.len(), ptr, flags) };
    check(call, rc)
}

/// `kexec_file_load(kernel_fd, initrd_fd, cmdline_len, cmdline, flags)`.
pub fn kexec_file_load(
    kernel: BorrowedFd<'_>,
    initrd: Option<BorrowedFd<'_>>,
    cmdline: &CStr,
) -> Result<(), KexecError> {
    let call = "kexec_file_load";
    let nr = number(call, native().and_then(|a| numbers(a).kexec_file_load))?;
    let (initrd_fd, flags): (c_int, c_ulong) = match initrd {
        Some(fd) => (fd.as_raw_fd(), 0),
        None => (-1, FILE_NO_INITRAMFS),
    };
    let len = cmdline.to_bytes_with_nul().len();
    // SAFETY: the descriptors are open for the duration of the call (borrowed), and the
    // command line is `len` readable bytes ending in its NUL, as the call requires.
    let rc = unsafe {
        libc::syscall(
            nr,
            kernel.as_raw_fd(),
            initrd_fd,
            len,
            cmdline.as_ptr(),
            flags,
        )
    };
    check(call, rc)
}

/// The CPU's page size, the granule of every segment.
pub fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the C library and touches no memory of ours.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
}
