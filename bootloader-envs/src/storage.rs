//! Where one copy of an environment lives: a file or block device, NOR or NAND MTD.
//!
//! Each backend reads and writes exactly one whole copy; the engine in [`crate::store`]
//! decides which copy to write and verifies it. Backends open the device for each
//! operation, as libubootenv does, so nothing stays open between a write and the
//! read-back that checks it.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use liminix_flash::{erase_range, Flash};

use crate::error::{EnvError, Result};
use crate::layout::FlagScheme;

/// One copy of an environment on some storage.
pub trait CopyDevice {
    /// Human-readable location for messages (`/dev/mtd3@0x0`).
    fn describe(&self) -> String;
    /// Reads the whole copy into `buf` (`buf.len()` = env size).
    fn read_copy(&mut self, buf: &mut [u8]) -> Result<()>;
    /// Replaces the whole copy with `data` and makes it durable before returning.
    fn write_copy(&mut self, data: &[u8]) -> Result<()>;
    /// The flag scheme writers use on this kind of storage.
    fn flag_scheme(&self) -> FlagScheme;
    /// Boolean scheme only: programs the flags byte (offset 4) to 0 in place.
    fn mark_obsolete(&mut self) -> Result<()>;
}

/// A copy in a regular file or a block device, at a byte offset.
#[derive(Debug, Clone)]
pub struct FileCopy {
    path: PathBuf,
    offset: i64,
}

impl FileCopy {
    /// `offset` < 0 counts from the end of the file or device (libubootenv semantics).
    pub fn new(path: impl Into<PathBuf>, offset: i64) -> Self {
        FileCopy {
            path: path.into(),
            offset,
        }
    }

    fn open(&self, write: bool) -> Result<(File, u64)> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(write)
            .open(&self.path)
            .map_err(|e| EnvError::io(format!("open {}", self.path.display()), e))?;
        let off = if self.offset >= 0 {
            self.offset.unsigned_abs()
        } else {
            // SEEK_END gives the size of block devices too.
            let end = f
                .seek(SeekFrom::End(0))
                .map_err(|e| EnvError::io(format!("size of {}", self.path.display()), e))?;
            end.checked_sub(self.offset.unsigned_abs()).ok_or_else(|| {
                EnvError::Geometry(format!(
                    "offset {} before start of {}",
                    self.offset,
                    self.describe()
                ))
            })?
        };
        Ok((f, off))
    }
}

impl CopyDevice for FileCopy {
    fn describe(&self) -> String {
        format!("{}@{:#x}", self.path.display(), self.offset)
    }

    fn read_copy(&mut self, buf: &mut [u8]) -> Result<()> {
        let (f, off) = self.open(false)?;
        f.read_exact_at(buf, off)
            .map_err(|e| EnvError::io(format!("read {}", self.describe()), e))
    }

    fn write_copy(&mut self, data: &[u8]) -> Result<()> {
        let (f, off) = self.open(true)?;
        let what = || format!("write {}", self.describe());
        f.write_all_at(data, off)
            .map_err(|e| EnvError::io(what(), e))?;
        f.sync_all().map_err(|e| EnvError::io(what(), e))
    }

    fn flag_scheme(&self) -> FlagScheme {
        FlagScheme::Incremental
    }

    fn mark_obsolete(&mut self) -> Result<()> {
        let (f, off) = self.open(true)?;
        f.write_all_at(&[0], off + 4)
            .and_then(|()| f.sync_all())
            .map_err(|e| EnvError::io(format!("flag {}", self.describe()), e))
    }
}

/// A copy on raw flash: erase blocks of `sector_size`, skipping bad NAND blocks within
/// `sectors` blocks (each bad block consumes one, as in U-Boot and libubootenv).
pub struct MtdCopy<F: Flash> {
    flash: F,
    name: String,
    offset: u64,
    sector_size: u64,
    sectors: u64,
}

impl<F: Flash> MtdCopy<F> {
    /// `sector_size` 0 = the device's erase size; `sectors` 0 = 1.
    pub fn new(
        flash: F,
        name: impl Into<String>,
        offset: u64,
        sector_size: u64,
        sectors: u64,
    ) -> Self {
        let erase = u64::from(flash.geometry().erase_size);
        MtdCopy {
            flash,
            name: name.into(),
            offset,
            sector_size: if sector_size == 0 { erase } else { sector_size },
            sectors: sectors.max(1),
        }
    }

    /// The underlying flash (tests inspect it).
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// What was written is durable only after this (block2mtd buffers writes).
    fn sync(&mut self) -> Result<()> {
        self.flash
            .sync()
            .map_err(|e| EnvError::flash(format!("sync {}", self.describe()), e))
    }

    /// Start offsets of the good blocks holding `len` bytes, and the byte offset within the
    /// first block (NOR copies may start inside an erase block).
    fn blocks(&mut self, len: usize) -> Result<Vec<u64>> {
        let ss = self.sector_size;
        let size = self.flash.geometry().size;
        if ss == 0 || ss > size {
            return Err(EnvError::Geometry(format!(
                "{}: sector size {ss:#x} does not fit the device ({size:#x} bytes)",
                self.describe()
            )));
        }
        if self.offset >= size {
            return Err(EnvError::Geometry(format!(
                "{}: the offset is past the end of the device ({size:#x} bytes)",
                self.describe()
            )));
        }
        let first = self.offset - self.offset % ss;
        let needed = (self.offset % ss + len as u64).div_ceil(ss);
        let nand = self.flash.geometry().is_nand;
        let mut budget = self.sectors.max(needed);
        let mut out = Vec::new();
        let mut at = first;
        while (out.len() as u64) < needed {
            if budget == 0 {
                return Err(EnvError::NoGoodBlock {
                    what: self.describe(),
                    sectors: self.sectors,
                });
            }
            budget -= 1;
            if at >= size {
                return Err(EnvError::Geometry(format!(
                    "{}: the copy runs past the end of the device ({size:#x} bytes)",
                    self.describe()
                )));
            }
            let bad = nand
                && self.flash.is_bad(at).map_err(|e| {
                    EnvError::flash(format!("bad-block check {}", self.describe()), e)
                })?;
            if !bad {
                out.push(at);
            }
            at += ss;
        }
        Ok(out)
    }
}

impl<F: Flash> CopyDevice for MtdCopy<F> {
    fn describe(&self) -> String {
        format!("{}@{:#x}", self.name, self.offset)
    }

    fn read_copy(&mut self, buf: &mut [u8]) -> Result<()> {
        // `blocks` checks the sector size against the device first.
        let blocks = self.blocks(buf.len())?;
        let ss = self.sector_size as usize;
        let mut skip = (self.offset % self.sector_size) as usize;
        let mut done = 0;
        for blk in blocks {
            let n = (ss - skip).min(buf.len() - done);
            self.flash
                .read(blk + skip as u64, &mut buf[done..done + n])
                .map_err(|e| EnvError::flash(format!("read {}", self.describe()), e))?;
            done += n;
            skip = 0;
        }
        Ok(())
    }

    fn write_copy(&mut self, data: &[u8]) -> Result<()> {
        // `blocks` checks the sector size against the device first.
        let blocks = self.blocks(data.len())?;
        let ss = self.sector_size as usize;
        let mut skip = (self.offset % self.sector_size) as usize;
        let mut done = 0;
        for blk in blocks {
            let n = (ss - skip).min(data.len() - done);
            // Whole-block read-modify-write keeps bytes of the block outside this copy.
            let mut block = vec![0xFF; ss];
            // Keep the rest of a shared block; if it cannot be read (torn page, ECC
            // failure) it is lost either way, and the copy must still be rewritable.
            if (skip > 0 || n < ss) && self.flash.read(blk, &mut block).is_err() {
                block.fill(0xFF);
            }
            block[skip..skip + n].copy_from_slice(&data[done..done + n]);
            let desc = self.describe();
            let what = || format!("erase/write {desc} block {blk:#x}");
            erase_range(&mut self.flash, blk, ss as u64).map_err(|e| EnvError::flash(what(), e))?;
            self.flash
                .program(blk, &block)
                .map_err(|e| EnvError::flash(what(), e))?;
            done += n;
            skip = 0;
        }
        self.sync()
    }

    fn flag_scheme(&self) -> FlagScheme {
        if self.flash.geometry().is_nand {
            FlagScheme::Incremental
        } else {
            FlagScheme::Boolean
        }
    }

    fn mark_obsolete(&mut self) -> Result<()> {
        // NOR programs 1→0 without an erase; only the boolean scheme calls this.
        let blocks = self.blocks(5)?;
        let at = blocks[0] + self.offset % self.sector_size + 4;
        self.flash
            .program(at, &[0])
            .map_err(|e| EnvError::flash(format!("flag {}", self.describe()), e))?;
        self.sync()
    }
}
