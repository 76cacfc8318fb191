//! The only place in this crate that talks to the kernel through raw ioctls.
//!
//! Structures mirror `include/uapi/mtd/mtd-abi.h` (layouts in docs/formats/mtd.md);
//! every one carries a size assertion so a layout slip fails the build.

use std::ffi::c_void;
use std::mem::size_of;
use std::os::fd::AsFd;

use rustix::io::Errno;
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode};

use crate::ioc::{ior, iow};

/// `struct mtd_info_user`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MtdInfoUser {
    pub kind: u8,
    pub flags: u32,
    pub size: u32,
    pub erasesize: u32,
    pub writesize: u32,
    pub oobsize: u32,
    pub padding: u64,
}
const _: () = assert!(size_of::<MtdInfoUser>() == 32);

/// `struct erase_info_user64`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct EraseInfo64 {
    pub start: u64,
    pub length: u64,
}
const _: () = assert!(size_of::<EraseInfo64>() == 16);

/// `struct mtd_ecc_stats`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MtdEccStats {
    pub corrected: u32,
    pub failed: u32,
    pub badblocks: u32,
    pub bbtblocks: u32,
}
const _: () = assert!(size_of::<MtdEccStats>() == 16);

const MEMGETINFO: u32 = ior(b'M', 1, size_of::<MtdInfoUser>());
const MEMGETBADBLOCK: u32 = iow(b'M', 11, size_of::<i64>());
const MEMSETBADBLOCK: u32 = iow(b'M', 12, size_of::<i64>());
const ECCGETSTATS: u32 = ior(b'M', 18, size_of::<MtdEccStats>());
const MEMERASE64: u32 = iow(b'M', 20, size_of::<EraseInfo64>());

/// An ioctl whose argument is a pointer to `T` and whose result is the
/// syscall's non-negative return value.
///
/// The const opcode is checked against `T`'s size by the constructors above,
/// which compute it from `size_of::<T>()`.
struct PtrIoctl<'a, const OP: u32, T> {
    arg: &'a mut T,
}

// SAFETY: `as_ptr` hands the kernel a pointer to a live, exclusively borrowed
// `T` whose size is the one encoded in `OP`; the output is the plain return
// value, so nothing is read back through the pointer here.
unsafe impl<const OP: u32, T> Ioctl for PtrIoctl<'_, OP, T> {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        // Opcode is u32 with linux_raw and c_ulong with libc; OP fits both.
        #[allow(clippy::unnecessary_cast)]
        let op = OP as Opcode;
        op
    }

    fn as_ptr(&mut self) -> *mut c_void {
        (self.arg as *mut T).cast()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

/// Issues ioctl `OP` with a pointer to `arg`; returns the syscall's value.
/// Shared with liminix-ubi, whose ioctls take the same shape of argument.
///
/// # Safety
/// `OP` must be an ioctl whose argument is exactly one `T` (the kernel reads and
/// writes `size_of::<T>()` bytes through the pointer and nothing else).
pub unsafe fn ioctl_ptr<const OP: u32, T>(fd: impl AsFd, arg: &mut T) -> Result<i32, Errno> {
    // SAFETY: the caller guarantees `OP` takes exactly one `T`.
    unsafe { rustix::ioctl::ioctl(fd, PtrIoctl::<OP, T> { arg }) }
}

fn call<const OP: u32, T>(fd: impl AsFd, arg: &mut T) -> Result<i32, Errno> {
    // SAFETY: every `OP` used with this helper is an MTD ioctl whose argument is
    // exactly one `T` (sizes asserted above); the kernel reads/writes only that.
    unsafe { ioctl_ptr::<OP, T>(fd, arg) }
}

/// MEMGETINFO.
pub fn get_info(fd: impl AsFd) -> Result<MtdInfoUser, Errno> {
    let mut info = MtdInfoUser::default();
    call::<MEMGETINFO, _>(fd, &mut info)?;
    Ok(info)
}

/// MEMERASE64 of `[start, start+length)`.
pub fn erase64(fd: impl AsFd, start: u64, length: u64) -> Result<(), Errno> {
    let mut req = EraseInfo64 { start, length };
    call::<MEMERASE64, _>(fd, &mut req).map(drop)
}

/// MEMGETBADBLOCK: `true` if the block containing `offset` is marked bad.
pub fn get_bad_block(fd: impl AsFd, offset: u64) -> Result<bool, Errno> {
    let mut off = offset as i64;
    call::<MEMGETBADBLOCK, _>(fd, &mut off).map(|r| r > 0)
}

/// MEMSETBADBLOCK.
pub fn set_bad_block(fd: impl AsFd, offset: u64) -> Result<(), Errno> {
    let mut off = offset as i64;
    call::<MEMSETBADBLOCK, _>(fd, &mut off).map(drop)
}

/// ECCGETSTATS.
pub fn ecc_stats(fd: impl AsFd) -> Result<MtdEccStats, Errno> {
    let mut stats = MtdEccStats::default();
    call::<ECCGETSTATS, _>(fd, &mut stats)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn codes_for_this_host() {
        assert_eq!(MEMGETINFO, 0x80204D01);
        assert_eq!(MEMERASE64, 0x40104D14);
        assert_eq!(MEMGETBADBLOCK, 0x40084D0B);
        assert_eq!(MEMSETBADBLOCK, 0x40084D0C);
        assert_eq!(ECCGETSTATS, 0x80104D12);
    }

    #[test]
    fn ioctl_on_a_regular_file_is_refused() {
        let f = tempfile::tempfile().unwrap();
        assert_eq!(get_info(&f).unwrap_err(), Errno::NOTTY);
    }
}
