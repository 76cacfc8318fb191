//! The bootconfig partition as the agent uses it: read the decoded bootconfig, and write
//! a changed one back (erase + rewrite of its erase block, all other bytes kept, then
//! read back and checked). Works on raw flash (an MTD character device, or the simulator
//! in tests) or on a regular file that holds the partition.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use liminix_flash::{erase_range, Flash, MtdFlash};

use super::Bootconfig;
use crate::error::{EnvError, Result};

/// Erase block assumed for partition images in regular files (the NWA50AX NAND block).
pub const FILE_BLOCK: u64 = 0x20000;

enum Backing {
    Flash(Box<dyn Flash>),
    File(PathBuf),
}

/// An open bootconfig partition.
pub struct BootconfigDevice {
    backing: Backing,
    name: String,
    block_off: u64,
    block_len: u64,
    in_block: usize,
}

impl BootconfigDevice {
    /// Opens `path` (`/dev/mtd*` = MTD, else a file); the two bytes are at `offset`.
    /// An MTD device that cannot be opened, or a missing file, is [`EnvError::Io`]; an
    /// offset past the end is [`EnvError::Geometry`].
    pub fn open(path: &Path, offset: u64) -> Result<Self> {
        let name = path.display().to_string();
        if name.starts_with("/dev/mtd") {
            let dev = MtdFlash::open(path, true)
                .map_err(|e| EnvError::io(format!("open {name}"), std::io::Error::other(e)))?;
            return Self::on_flash(Box::new(dev), name, offset);
        }
        let size = std::fs::metadata(path)
            .map_err(|e| EnvError::io(format!("open {name}"), e))?
            .len();
        let erase = FILE_BLOCK.min(size).max(1);
        Self::new(Backing::File(path.to_owned()), name, size, erase, offset)
    }

    /// The bootconfig on a raw flash partition (a real MTD device, or the simulator in
    /// tests); the two bytes are at `offset`, `name` is used in messages.
    pub fn on_flash(flash: Box<dyn Flash>, name: String, offset: u64) -> Result<Self> {
        let g = flash.geometry();
        let erase = u64::from(g.erase_size);
        Self::new(Backing::Flash(flash), name, g.size, erase, offset)
    }

    fn new(backing: Backing, name: String, size: u64, erase: u64, offset: u64) -> Result<Self> {
        if erase == 0 {
            return Err(EnvError::Geometry(format!(
                "{name} reports an erase block size of 0"
            )));
        }
        if offset.checked_add(2).is_none_or(|end| size < end) {
            return Err(EnvError::Geometry(format!(
                "Offset {offset} beyond size of MTD device {name}"
            )));
        }
        let block_off = offset / erase * erase;
        Ok(BootconfigDevice {
            backing,
            name,
            block_off,
            block_len: erase.min(size - block_off),
            in_block: (offset - block_off) as usize,
        })
    }

    /// The whole erase block holding the bootconfig.
    pub fn read_block(&mut self) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.block_len as usize];
        let what = || format!("read {}", self.name);
        match &mut self.backing {
            Backing::Flash(f) => f
                .read(self.block_off, &mut buf)
                .map_err(|e| EnvError::flash(what(), e))?,
            Backing::File(p) => std::fs::File::open(p)
                .and_then(|f| f.read_exact_at(&mut buf, self.block_off))
                .map_err(|e| EnvError::io(what(), e))?,
        }
        Ok(buf)
    }

    /// Reads and decodes the bootconfig.
    pub fn read(&mut self) -> Result<Bootconfig> {
        let block = self.read_block()?;
        Bootconfig::parse(&block[self.in_block..])
    }

    /// Writes `bc` in OpenWrt's encoding (log bits cleared) if either byte changes.
    /// Returns whether the block was rewritten.
    pub fn write(&mut self, bc: &Bootconfig) -> Result<bool> {
        let mut block = self.read_block()?;
        let new = bc.encode_tool();
        let at = self.in_block;
        if block[at..at + 2] == new {
            return Ok(false);
        }
        block[at..at + 2].copy_from_slice(&new);
        let what = || format!("write {}", self.name);
        match &mut self.backing {
            Backing::Flash(f) => erase_range(f, self.block_off, self.block_len)
                .and_then(|()| f.program(self.block_off, &block))
                .and_then(|()| f.sync())
                .map_err(|e| EnvError::flash(what(), e))?,
            Backing::File(p) => OpenOptions::new()
                .write(true)
                .open(p)
                .and_then(|f| {
                    f.write_all_at(&block, self.block_off)?;
                    f.sync_all()
                })
                .map_err(|e| EnvError::io(what(), e))?,
        }
        let back = self.read_block()?;
        if let Some(offset) = back.iter().zip(&block).position(|(a, b)| a != b) {
            return Err(EnvError::VerifyFailed {
                what: self.name.clone(),
                offset,
            });
        }
        Ok(true)
    }
}
