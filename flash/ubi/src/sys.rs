//! The only place in this crate that issues raw UBI ioctls.
//!
//! Structures mirror `include/uapi/mtd/ubi-user.h` (docs/formats/ubi.md), each
//! with a size assertion; request codes come from `liminix_mtd::ioc`, which
//! knows the MIPS encoding.

use std::mem::size_of;
use std::os::fd::AsFd;

use liminix_mtd::ioc::iow;
use rustix::io::Errno;

/// Longest volume name the kernel accepts.
pub const MAX_NAME: usize = 127;
/// Most entries one UBI_IOCRNVOL may carry.
pub const MAX_RENAMES: usize = 32;

/// `struct ubi_attach_req`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct AttachReq {
    pub ubi_num: i32,
    pub mtd_num: i32,
    pub vid_hdr_offset: i32,
    pub max_beb_per1024: i16,
    pub disable_fm: i8,
    pub need_resv_pool: i8,
    pub padding: [i8; 8],
}
const _: () = assert!(size_of::<AttachReq>() == 24);

/// `struct ubi_mkvol_req` (packed in C; this natural layout has the same offsets).
#[repr(C)]
pub struct MkvolReq {
    pub vol_id: i32,
    pub alignment: i32,
    pub bytes: i64,
    pub vol_type: i8,
    pub flags: u8,
    pub name_len: i16,
    pub padding2: [u8; 4],
    pub name: [u8; 128],
}
const _: () = assert!(size_of::<MkvolReq>() == 152);

/// `struct ubi_rsvol_req`: packed, 12 bytes.
#[repr(C, packed)]
pub struct RsvolReq {
    pub bytes: i64,
    pub vol_id: i32,
}
const _: () = assert!(size_of::<RsvolReq>() == 12);

/// One entry of `struct ubi_rnvol_req`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RnvolEntry {
    pub vol_id: i32,
    pub name_len: i16,
    pub padding2: [u8; 2],
    pub name: [u8; 128],
}
const _: () = assert!(size_of::<RnvolEntry>() == 136);

/// `struct ubi_rnvol_req`.
#[repr(C)]
pub struct RnvolReq {
    pub count: i32,
    pub padding1: [u8; 12],
    pub ents: [RnvolEntry; MAX_RENAMES],
}
const _: () = assert!(size_of::<RnvolReq>() == 4368);

/// `vol_type` of UBI_IOCMKVOL (not the on-flash 1/2).
pub const VOL_DYNAMIC: i8 = 3;
/// `vol_type` of UBI_IOCMKVOL for static volumes.
pub const VOL_STATIC: i8 = 4;

const IOCATT: u32 = iow(b'o', 64, size_of::<AttachReq>());
const IOCDET: u32 = iow(b'o', 65, size_of::<i32>());
const IOCMKVOL: u32 = iow(b'o', 0, size_of::<MkvolReq>());
const IOCRMVOL: u32 = iow(b'o', 1, size_of::<i32>());
const IOCRSVOL: u32 = iow(b'o', 2, size_of::<RsvolReq>());
const IOCRNVOL: u32 = iow(b'o', 3, size_of::<RnvolReq>());
const IOCVOLUP: u32 = iow(b'O', 0, size_of::<i64>());

/// Copies `name` into a kernel name buffer; the caller validated its length.
pub fn name_buf(name: &str) -> [u8; 128] {
    let mut buf = [0u8; 128];
    buf[..name.len()].copy_from_slice(name.as_bytes());
    buf
}

fn call<const OP: u32, T>(fd: impl AsFd, arg: &mut T) -> Result<(), Errno> {
    // SAFETY: each `OP` below is a UBI ioctl whose argument is exactly one `T`
    // (sizes asserted above), so the kernel touches only that memory.
    unsafe { liminix_mtd::ioctl_ptr::<OP, T>(fd, arg) }.map(drop)
}

/// UBI_IOCATT on `/dev/ubi_ctrl`; returns the assigned UBI number.
pub fn attach(ctrl: impl AsFd, req: &mut AttachReq) -> Result<u32, Errno> {
    call::<IOCATT, _>(ctrl, req)?;
    Ok(req.ubi_num as u32)
}

/// UBI_IOCDET on `/dev/ubi_ctrl`.
pub fn detach(ctrl: impl AsFd, ubi_num: u32) -> Result<(), Errno> {
    call::<IOCDET, _>(ctrl, &mut (ubi_num as i32))
}

/// UBI_IOCMKVOL on `/dev/ubiN`; returns the volume id the kernel chose.
pub fn mkvol(dev: impl AsFd, req: &mut MkvolReq) -> Result<u32, Errno> {
    call::<IOCMKVOL, _>(dev, req)?;
    Ok(req.vol_id as u32)
}

/// UBI_IOCRMVOL.
pub fn rmvol(dev: impl AsFd, vol_id: u32) -> Result<(), Errno> {
    call::<IOCRMVOL, _>(dev, &mut (vol_id as i32))
}

/// UBI_IOCRSVOL.
pub fn rsvol(dev: impl AsFd, vol_id: u32, bytes: u64) -> Result<(), Errno> {
    call::<IOCRSVOL, _>(
        dev,
        &mut RsvolReq {
            bytes: bytes as i64,
            vol_id: vol_id as i32,
        },
    )
}

/// UBI_IOCRNVOL.
pub fn rnvol(dev: impl AsFd, req: &mut RnvolReq) -> Result<(), Errno> {
    call::<IOCRNVOL, _>(dev, req)
}

/// UBI_IOCVOLUP on `/dev/ubiN_M`: announces `bytes` of new content.
pub fn volup(vol: impl AsFd, bytes: u64) -> Result<(), Errno> {
    call::<IOCVOLUP, _>(vol, &mut (bytes as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn codes_for_this_host() {
        assert_eq!(IOCATT, 0x40186F40);
        assert_eq!(IOCDET, 0x40046F41);
        assert_eq!(IOCMKVOL, 0x40986F00);
        assert_eq!(IOCRMVOL, 0x40046F01);
        assert_eq!(IOCRSVOL, 0x400C6F02);
        assert_eq!(IOCRNVOL, 0x51106F03);
        assert_eq!(IOCVOLUP, 0x40084F00);
    }

    #[test]
    fn field_offsets_match_the_kernel() {
        use std::mem::offset_of;
        assert_eq!(offset_of!(MkvolReq, bytes), 8);
        assert_eq!(offset_of!(MkvolReq, vol_type), 16);
        assert_eq!(offset_of!(MkvolReq, name_len), 18);
        assert_eq!(offset_of!(MkvolReq, name), 24);
        assert_eq!(offset_of!(RnvolReq, ents), 16);
        assert_eq!(offset_of!(RnvolEntry, name), 8);
        assert_eq!(offset_of!(RsvolReq, vol_id), 8);
        assert_eq!(offset_of!(AttachReq, max_beb_per1024), 12);
    }
}
