//! The only place in this crate that calls the kernel through raw ioctls.
//!
//! Structures mirror `include/uapi/linux/btrfs.h`; each carries a size assertion so a layout
//! slip fails the build, and the request codes are checked against the C headers (host and
//! ARMv7) by this crate's tests.

use std::mem::size_of;
use std::os::fd::AsFd;

use liminix_mtd::ioc::{ior, iow};
use rustix::io::Errno;
use rustix::ioctl::{ioctl, Getter, Opcode, Setter};

const MAGIC: u8 = 0x94;
/// `BTRFS_SUBVOL_NAME_MAX + 1`: the name field of the v2 arguments.
pub const V2_NAME_LEN: usize = 4040;
/// `BTRFS_PATH_NAME_MAX + 1`: the name field of the v1 arguments.
pub const V1_NAME_LEN: usize = 4088;
/// `BTRFS_SUBVOL_RDONLY`.
pub const SUBVOL_RDONLY: u64 = 1 << 1;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
pub struct VolArgs {
    pub fd: i64,
    pub name: [u8; V1_NAME_LEN],
}
const _: () = assert!(size_of::<VolArgs>() == 4096);

/// `struct btrfs_ioctl_vol_args_v2` with the `size`/`qgroup_inherit` union left zero.
#[repr(C)]
pub struct VolArgsV2 {
    pub fd: i64,
    pub transid: u64,
    pub flags: u64,
    pub unused: [u64; 4],
    pub name: [u8; V2_NAME_LEN],
}
const _: () = assert!(size_of::<VolArgsV2>() == 4096);

pub const SNAP_CREATE_V2: u32 = iow(MAGIC, 23, size_of::<VolArgsV2>());
pub const SUBVOL_CREATE_V2: u32 = iow(MAGIC, 24, size_of::<VolArgsV2>());
pub const SNAP_DESTROY: u32 = iow(MAGIC, 15, size_of::<VolArgs>());
pub const SUBVOL_GETFLAGS: u32 = ior(MAGIC, 25, size_of::<u64>());
pub const SUBVOL_SETFLAGS: u32 = iow(MAGIC, 26, size_of::<u64>());

// Opcode is u32 with linux_raw and c_ulong with libc; every code above fits both.
#[allow(clippy::unnecessary_cast)]
const fn op(code: u32) -> Opcode {
    code as Opcode
}

/// `BTRFS_IOC_SNAP_CREATE_V2` on the directory `dir` that will hold the snapshot.
pub fn snap_create_v2(dir: impl AsFd, args: VolArgsV2) -> Result<(), Errno> {
    // SAFETY: the opcode encodes `_IOW(0x94, 23, 4096)`, the size of `VolArgsV2`, which
    // mirrors the kernel's structure (size asserted above); the kernel only reads it.
    unsafe { ioctl(dir, Setter::<{ op(SNAP_CREATE_V2) }, VolArgsV2>::new(args)) }
}

/// `BTRFS_IOC_SUBVOL_CREATE_V2` on the directory that will hold the subvolume.
pub fn subvol_create_v2(dir: impl AsFd, args: VolArgsV2) -> Result<(), Errno> {
    // SAFETY: as for `snap_create_v2`, with request number 24 and the same structure.
    unsafe {
        ioctl(
            dir,
            Setter::<{ op(SUBVOL_CREATE_V2) }, VolArgsV2>::new(args),
        )
    }
}

/// `BTRFS_IOC_SNAP_DESTROY` (v1, known to every kernel with btrfs) on the parent directory.
pub fn snap_destroy(dir: impl AsFd, args: VolArgs) -> Result<(), Errno> {
    // SAFETY: the opcode encodes `_IOW(0x94, 15, 4096)`, the size of `VolArgs` (asserted
    // above), which the kernel only reads.
    unsafe { ioctl(dir, Setter::<{ op(SNAP_DESTROY) }, VolArgs>::new(args)) }
}

/// `BTRFS_IOC_SUBVOL_GETFLAGS` on the subvolume's root directory.
pub fn subvol_getflags(subvol: impl AsFd) -> Result<u64, Errno> {
    // SAFETY: the opcode encodes `_IOR(0x94, 25, 8)`; the kernel writes one u64, the
    // output type of the getter.
    unsafe { ioctl(subvol, Getter::<{ op(SUBVOL_GETFLAGS) }, u64>::new()) }
}

/// `BTRFS_IOC_SUBVOL_SETFLAGS` on the subvolume's root directory.
pub fn subvol_setflags(subvol: impl AsFd, flags: u64) -> Result<(), Errno> {
    // SAFETY: the opcode encodes `_IOW(0x94, 26, 8)`; the kernel reads one u64.
    unsafe { ioctl(subvol, Setter::<{ op(SUBVOL_SETFLAGS) }, u64>::new(flags)) }
}
