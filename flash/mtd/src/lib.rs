//! Low-level access to Linux MTD flash devices (`/dev/mtdN`).
//!
//! This crate is the bottom of the project's flash layer: it opens an MTD
//! character device, learns its geometry, and offers aligned, bounds-checked
//! erase/write/read plus the NAND bad-block and ECC ioctls. It knows nothing of
//! UBI, images or update policy. All raw ioctls live in the private `sys`
//! module; request codes are computed per target architecture in [`ioc`]
//! (MIPS encodes them differently). [`sysfs`] finds devices by name under an
//! injectable root directory.

pub mod ioc;
pub mod sysfs;

mod error;
#[allow(unsafe_code)]
mod sys;

pub use sys::ioctl_ptr;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

pub use error::MtdError;

/// The kind of memory behind an MTD device (`mtd_info_user.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtdKind {
    Absent,
    Ram,
    Rom,
    Nor,
    Nand,
    MlcNand,
    /// DataFlash, UBI-volume emulation and future types, with the raw code.
    Other(u8),
}

impl MtdKind {
    fn from_raw(raw: u8) -> Self {
        match raw {
            0 => Self::Absent,
            1 => Self::Ram,
            2 => Self::Rom,
            3 => Self::Nor,
            4 => Self::Nand,
            8 => Self::MlcNand,
            other => Self::Other(other),
        }
    }

    /// NAND needs bad-block handling and page-aligned writes; ECC can correct or fail.
    pub fn is_nand(self) -> bool {
        matches!(self, Self::Nand | Self::MlcNand)
    }
}

/// Geometry from MEMGETINFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtdInfo {
    pub kind: MtdKind,
    /// Bytes. MEMGETINFO only carries 32 bits; use [`sysfs`] for devices ≥ 4 GiB.
    pub size: u64,
    pub erase_size: u32,
    /// Minimal write unit: the NAND page, 1 on NOR and RAM.
    pub write_size: u32,
    pub oob_size: u32,
}

/// ECC counters of the whole MTD master device (ECCGETSTATS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EccStats {
    /// Bitflips corrected by ECC, cumulative.
    pub corrected: u32,
    /// Uncorrectable ECC errors, cumulative.
    pub failed: u32,
    pub badblocks: u32,
    pub bbtblocks: u32,
}

/// The 64-bit size from `/sys/dev/char/MAJ:MIN/size` of the opened node;
/// MEMGETINFO truncates sizes ≥ 4 GiB. None (use MEMGETINFO) when sysfs is
/// not mounted or the node is an `mtdNro` alias without attributes.
fn sysfs_size(fd: &OwnedFd) -> Option<u64> {
    let rdev = rustix::fs::fstat(fd).ok()?.st_rdev;
    let (maj, min) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let text = std::fs::read_to_string(format!("/sys/dev/char/{maj}:{min}/size")).ok()?;
    text.trim().parse().ok()
}

/// An open `/dev/mtdN`.
#[derive(Debug)]
pub struct MtdDevice {
    fd: OwnedFd,
    path: PathBuf,
    info: MtdInfo,
    writable: bool,
}

impl MtdDevice {
    /// Opens the character device and reads its geometry.
    pub fn open(path: &Path, writable: bool) -> Result<Self, MtdError> {
        let mode = if writable {
            OFlags::RDWR
        } else {
            OFlags::RDONLY
        };
        let fd =
            rustix::fs::open(path, mode | OFlags::CLOEXEC, Mode::empty()).map_err(|source| {
                MtdError::Open {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        let raw = sys::get_info(&fd).map_err(|source| MtdError::Ioctl {
            op: "MEMGETINFO",
            path: path.to_path_buf(),
            offset: 0,
            source,
        })?;
        let info = MtdInfo {
            kind: MtdKind::from_raw(raw.kind),
            size: sysfs_size(&fd).unwrap_or(u64::from(raw.size)),
            erase_size: raw.erasesize,
            write_size: raw.writesize.max(1),
            oob_size: raw.oobsize,
        };
        Ok(Self {
            fd,
            path: path.to_path_buf(),
            info,
            writable,
        })
    }

    /// Geometry read at open.
    pub fn info(&self) -> &MtdInfo {
        &self.info
    }

    /// The device node this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fills `buf` from `offset`.
    ///
    /// Corrected bitflips are not an error (mtdchar hands back corrected data).
    /// On NAND an uncorrectable ECC error during this read, which read(2) hides,
    /// is detected through the ECC failure counter and reported.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), MtdError> {
        self.check_range("read", offset, buf.len() as u64, 1)?;
        let before = self.failed_count()?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            match rustix::io::pread(&self.fd, &mut buf[done..], pos) {
                Ok(0) => return Err(self.read_err(pos, Errno::IO)),
                Ok(n) => done += n,
                // EUCLEAN means "corrected"; mtdchar normally hides it, retrying is harmless.
                Err(Errno::INTR | Errno::UCLEAN) => continue,
                Err(e) => return Err(self.read_err(pos, e)),
            }
        }
        match (before, self.failed_count()?) {
            (Some(b), Some(a)) if a != b => Err(MtdError::EccFailed {
                path: self.path.clone(),
                offset,
                len: buf.len(),
            }),
            _ => Ok(()),
        }
    }

    /// Programs `data` at `offset`; both must be multiples of the write size
    /// and the range must have been erased.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), MtdError> {
        self.check_writable()?;
        let unit = u64::from(self.info.write_size);
        self.check_range("write", offset, data.len() as u64, unit)?;
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            match rustix::io::pwrite(&self.fd, &data[done..], pos) {
                Ok(0) => return Err(self.write_err(pos, Errno::NOSPC)),
                Ok(n) => done += n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(self.write_err(pos, e)),
            }
        }
        Ok(())
    }

    /// Erases whole erase blocks covering `[offset, offset+len)`.
    pub fn erase(&self, offset: u64, len: u64) -> Result<(), MtdError> {
        self.check_writable()?;
        self.check_range("erase", offset, len, u64::from(self.info.erase_size))?;
        sys::erase64(&self.fd, offset, len).map_err(|e| self.ioctl_err("MEMERASE64", offset, e))
    }

    /// Whether the erase block containing `offset` is marked bad. Devices without
    /// bad-block support (NOR, RAM) are never bad.
    pub fn is_bad(&self, offset: u64) -> Result<bool, MtdError> {
        let offset = self.block_start("is_bad", offset)?;
        match sys::get_bad_block(&self.fd, offset) {
            Ok(bad) => Ok(bad),
            Err(Errno::OPNOTSUPP) => Ok(false),
            Err(e) => Err(self.ioctl_err("MEMGETBADBLOCK", offset, e)),
        }
    }

    /// Marks the erase block containing `offset` bad (persistently, on NAND).
    pub fn mark_bad(&self, offset: u64) -> Result<(), MtdError> {
        self.check_writable()?;
        let offset = self.block_start("mark_bad", offset)?;
        sys::set_bad_block(&self.fd, offset)
            .map_err(|e| self.ioctl_err("MEMSETBADBLOCK", offset, e))
    }

    /// The device's ECC counters.
    pub fn ecc_stats(&self) -> Result<EccStats, MtdError> {
        let s = sys::ecc_stats(&self.fd).map_err(|e| self.ioctl_err("ECCGETSTATS", 0, e))?;
        Ok(EccStats {
            corrected: s.corrected,
            failed: s.failed,
            badblocks: s.badblocks,
            bbtblocks: s.bbtblocks,
        })
    }

    /// Uncorrectable-error counter, only where ECC exists.
    fn failed_count(&self) -> Result<Option<u32>, MtdError> {
        if self.info.kind.is_nand() {
            Ok(Some(self.ecc_stats()?.failed))
        } else {
            Ok(None)
        }
    }

    /// Start of the erase block holding `offset`, which must be inside the device.
    fn block_start(&self, op: &'static str, offset: u64) -> Result<u64, MtdError> {
        let start = offset - offset % u64::from(self.info.erase_size.max(1));
        self.check_range(op, start, 0, 1)?;
        Ok(start)
    }

    fn check_writable(&self) -> Result<(), MtdError> {
        if self.writable {
            Ok(())
        } else {
            Err(MtdError::ReadOnly {
                path: self.path.clone(),
            })
        }
    }

    /// `offset` and `len` must be multiples of `unit` and inside the device.
    /// A zero `len` checks that `offset` is a valid position.
    fn check_range(
        &self,
        op: &'static str,
        offset: u64,
        len: u64,
        unit: u64,
    ) -> Result<(), MtdError> {
        let why = if !offset.is_multiple_of(unit) || !len.is_multiple_of(unit) {
            Some("is not aligned to the device's unit")
        } else if offset
            .checked_add(len)
            .is_none_or(|end| end > self.info.size)
            || (len == 0 && offset >= self.info.size)
        {
            Some("extends past the end of the device")
        } else {
            None
        };
        match why {
            None => Ok(()),
            Some(why) => Err(MtdError::BadRange {
                op,
                path: self.path.clone(),
                offset,
                len,
                why,
            }),
        }
    }

    fn ioctl_err(&self, op: &'static str, offset: u64, source: Errno) -> MtdError {
        MtdError::Ioctl {
            op,
            path: self.path.clone(),
            offset,
            source,
        }
    }

    fn read_err(&self, offset: u64, source: Errno) -> MtdError {
        MtdError::Read {
            path: self.path.clone(),
            offset,
            source,
        }
    }

    fn write_err(&self, offset: u64, source: Errno) -> MtdError {
        MtdError::Write {
            path: self.path.clone(),
            offset,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_raw_codes() {
        assert_eq!(MtdKind::from_raw(3), MtdKind::Nor);
        assert_eq!(MtdKind::from_raw(4), MtdKind::Nand);
        assert_eq!(MtdKind::from_raw(8), MtdKind::MlcNand);
        assert_eq!(MtdKind::from_raw(7), MtdKind::Other(7));
        assert!(MtdKind::MlcNand.is_nand() && !MtdKind::Nor.is_nand());
    }

    #[test]
    fn opening_a_non_mtd_file_names_the_path() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let err = MtdDevice::open(f.path(), false).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("MEMGETINFO") && msg.contains(&*f.path().to_string_lossy()),
            "{msg}"
        );
    }

    #[test]
    fn missing_device_is_an_open_error() {
        let err = MtdDevice::open(Path::new("/nonexistent/mtd9"), true).unwrap_err();
        assert!(
            matches!(
                err,
                MtdError::Open {
                    source: Errno::NOENT,
                    ..
                }
            ),
            "{err}"
        );
    }
}
