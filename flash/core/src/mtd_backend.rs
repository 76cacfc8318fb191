//! [`Flash`] on a real `/dev/mtdN` through `liminix-mtd`.
//!
//! Failures of erase/program with EIO become [`FlashError::EraseFailed`] /
//! [`FlashError::ProgramFailed`], so the raw writer retires the block on NAND;
//! an uncorrectable ECC error becomes [`FlashError::Ecc`].
//!
//! The MTD character device has no `fsync`; the kernel syncs the device
//! (`mtd_sync`, which block2mtd turns into a sync of its block device) when a
//! descriptor opened for writing is closed, so [`Flash::sync`] opens and closes one.

use std::io;
use std::path::Path;

use liminix_mtd::{MtdDevice, MtdError};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::flash::{Flash, FlashError, Geometry};

/// A real MTD partition.
#[derive(Debug)]
pub struct MtdFlash {
    dev: MtdDevice,
    geo: Geometry,
}

impl MtdFlash {
    /// Wrap an opened device.
    pub fn new(dev: MtdDevice) -> Self {
        let i = *dev.info();
        let geo = Geometry {
            size: i.size,
            erase_size: i.erase_size,
            write_size: i.write_size,
            is_nand: i.kind.is_nand(),
        };
        MtdFlash { dev, geo }
    }

    /// Open `path` (e.g. `/dev/mtd3`).
    pub fn open(path: &Path, writable: bool) -> Result<Self, MtdError> {
        MtdDevice::open(path, writable).map(Self::new)
    }

    /// The underlying device.
    pub fn device(&self) -> &MtdDevice {
        &self.dev
    }
}

fn io(op: &'static str, off: u64, e: MtdError) -> FlashError {
    FlashError::Io {
        op,
        off,
        source: io::Error::other(e),
    }
}

impl Flash for MtdFlash {
    fn geometry(&self) -> Geometry {
        self.geo
    }

    fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.dev.read_at(off, buf).map_err(|e| match e {
            MtdError::EccFailed { .. } => FlashError::Ecc { off },
            e => io("read", off, e),
        })
    }

    fn erase_block(&mut self, off: u64) -> Result<(), FlashError> {
        let eb = u64::from(self.geo.erase_size);
        self.dev.erase(off, eb).map_err(|e| match e {
            MtdError::Ioctl {
                source: Errno::IO, ..
            } => FlashError::EraseFailed { off },
            e => io("erase", off, e),
        })
    }

    fn program(&mut self, off: u64, data: &[u8]) -> Result<(), FlashError> {
        self.dev.write_at(off, data).map_err(|e| match e {
            MtdError::Write {
                source: Errno::IO, ..
            } => FlashError::ProgramFailed { off },
            e => io("program", off, e),
        })
    }

    fn is_bad(&mut self, off: u64) -> Result<bool, FlashError> {
        if !self.geo.is_nand {
            return Ok(false);
        }
        self.dev.is_bad(off).map_err(|e| io("is_bad", off, e))
    }

    fn mark_bad(&mut self, off: u64) -> Result<(), FlashError> {
        self.dev.mark_bad(off).map_err(|e| io("mark_bad", off, e))
    }

    fn corrected_bitflips(&mut self) -> Result<u64, FlashError> {
        match self.dev.ecc_stats() {
            Ok(s) => Ok(u64::from(s.corrected)),
            // Devices without ECC have nothing to correct.
            Err(_) if !self.geo.is_nand => Ok(0),
            Err(e) => Err(io("ECCGETSTATS", 0, e)),
        }
    }

    fn sync(&mut self) -> Result<(), FlashError> {
        let path = self.dev.path();
        let fd = rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty());
        // Closing it is the sync; the kernel reports nothing from it.
        fd.map(drop).map_err(|e| FlashError::Io {
            op: "sync",
            off: 0,
            source: io::Error::new(e.kind(), format!("{}: {e}", path.display())),
        })
    }
}
