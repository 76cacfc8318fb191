//! The raw-flash operations the environment and bootconfig code need, and an in-memory
//! flash that behaves like NOR or NAND (programming only clears bits, erase sets 0xFF,
//! NAND writes whole pages, bad blocks) for tests and power-cut simulation.

use std::io;

/// NOR (byte-programmable, no bad blocks) or NAND (page writes, bad blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    /// NOR flash.
    Nor,
    /// NAND flash.
    Nand,
}

/// Geometry of a flash device or partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashInfo {
    /// NOR or NAND.
    pub kind: FlashKind,
    /// Total bytes.
    pub size: u64,
    /// Erase block size.
    pub erase_size: u64,
    /// Minimal write unit (1 on NOR, the page size on NAND).
    pub write_size: u64,
}

/// Raw flash access, offsets relative to the start of the device or partition.
pub trait Flash {
    /// Geometry.
    fn info(&self) -> FlashInfo;
    /// Reads `buf.len()` bytes at `off`.
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Programs `data` at `off` (the range must be erased, or on NOR only clear bits).
    fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()>;
    /// Erases `len` bytes at `off` (whole erase blocks).
    fn erase(&mut self, off: u64, len: u64) -> io::Result<()>;
    /// Whether the erase block at `off` is marked bad (always false on NOR).
    fn is_bad(&mut self, off: u64) -> io::Result<bool>;
}

impl<F: Flash + ?Sized> Flash for &mut F {
    fn info(&self) -> FlashInfo {
        (**self).info()
    }
    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(off, buf)
    }
    fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        (**self).write_at(off, data)
    }
    fn erase(&mut self, off: u64, len: u64) -> io::Result<()> {
        (**self).erase(off, len)
    }
    fn is_bad(&mut self, off: u64) -> io::Result<bool> {
        (**self).is_bad(off)
    }
}

/// A flash chip in memory.
#[derive(Debug, Clone)]
pub struct RamFlash {
    info: FlashInfo,
    /// The cells; public so tests can corrupt them.
    pub data: Vec<u8>,
    bad: Vec<bool>,
}

fn inval(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl RamFlash {
    /// An erased chip of `size` bytes.
    pub fn new(kind: FlashKind, size: u64, erase_size: u64, write_size: u64) -> Self {
        RamFlash {
            info: FlashInfo {
                kind,
                size,
                erase_size,
                write_size,
            },
            data: vec![0xFF; size as usize],
            bad: vec![false; (size / erase_size) as usize],
        }
    }

    /// Marks the block containing `off` bad.
    pub fn mark_bad(&mut self, off: u64) {
        self.bad[(off / self.info.erase_size) as usize] = true;
    }

    fn check(&self, off: u64, len: u64, align: u64, what: &str) -> io::Result<()> {
        if off + len > self.info.size {
            return Err(inval(format!("{what} {off:#x}+{len:#x} beyond end")));
        }
        if !off.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(inval(format!(
                "{what} {off:#x}+{len:#x} not aligned to {align:#x}"
            )));
        }
        if self.info.kind == FlashKind::Nand && self.bad[(off / self.info.erase_size) as usize] {
            return Err(io::Error::other(format!("{what} on bad block {off:#x}")));
        }
        Ok(())
    }
}

impl Flash for RamFlash {
    fn info(&self) -> FlashInfo {
        self.info
    }

    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check(off, 0, 1, "read")?;
        self.check(off, buf.len() as u64, 1, "read")?;
        buf.copy_from_slice(&self.data[off as usize..off as usize + buf.len()]);
        Ok(())
    }

    fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        self.check(off, data.len() as u64, self.info.write_size, "write")?;
        for (cell, &b) in self.data[off as usize..].iter_mut().zip(data) {
            *cell &= b; // programming only clears bits
        }
        Ok(())
    }

    fn erase(&mut self, off: u64, len: u64) -> io::Result<()> {
        self.check(off, len, self.info.erase_size, "erase")?;
        self.data[off as usize..(off + len) as usize].fill(0xFF);
        Ok(())
    }

    fn is_bad(&mut self, off: u64) -> io::Result<bool> {
        Ok(self.info.kind == FlashKind::Nand && self.bad[(off / self.info.erase_size) as usize])
    }
}

/// A flash that loses power after `budget` erase/write operations: the next operation
/// is torn (a prefix of a write lands, or the first half of an erase happens) and every
/// operation after it fails.
#[derive(Debug)]
pub struct PowerCutFlash<F: Flash> {
    /// The flash underneath; its contents are what survives the cut.
    pub inner: F,
    budget: Option<usize>,
    /// Operations performed so far (including the torn one).
    pub ops: usize,
}

impl<F: Flash> PowerCutFlash<F> {
    /// Cuts power at operation number `budget` (0 = the first one is torn); `None` = never.
    pub fn new(inner: F, budget: Option<usize>) -> Self {
        PowerCutFlash {
            inner,
            budget,
            ops: 0,
        }
    }

    /// True once the cut has happened.
    pub fn is_cut(&self) -> bool {
        self.budget.is_some_and(|b| self.ops > b)
    }

    fn tick(&mut self) -> io::Result<bool> {
        if self.is_cut() {
            return Err(io::Error::other("power lost"));
        }
        self.ops += 1;
        Ok(self.budget.is_some_and(|b| self.ops > b))
    }
}

impl<F: Flash> Flash for PowerCutFlash<F> {
    fn info(&self) -> FlashInfo {
        self.inner.info()
    }

    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        if self.is_cut() {
            return Err(io::Error::other("power lost"));
        }
        self.inner.read_at(off, buf)
    }

    fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        if self.tick()? {
            let ws = self.inner.info().write_size as usize;
            let half = (data.len() / 2) / ws * ws;
            self.inner.write_at(off, &data[..half])?;
            return Err(io::Error::other("power lost during write"));
        }
        self.inner.write_at(off, data)
    }

    fn erase(&mut self, off: u64, len: u64) -> io::Result<()> {
        if self.tick()? {
            // A torn erase leaves garbage; model it as the first half erased.
            let es = self.inner.info().erase_size;
            let len = len / 2 / es * es;
            if len > 0 {
                self.inner.erase(off, len)?;
            }
            return Err(io::Error::other("power lost during erase"));
        }
        self.inner.erase(off, len)
    }

    fn is_bad(&mut self, off: u64) -> io::Result<bool> {
        self.inner.is_bad(off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nor_programs_only_clear_bits_and_nand_needs_pages() {
        let mut nor = RamFlash::new(FlashKind::Nor, 4096, 1024, 1);
        nor.write_at(3, &[0x0F]).unwrap();
        nor.write_at(3, &[0xF1]).unwrap();
        assert_eq!(nor.data[3], 0x01);
        nor.erase(0, 1024).unwrap();
        assert_eq!(nor.data[3], 0xFF);
        assert!(nor.erase(1, 1024).is_err());
        let mut nand = RamFlash::new(FlashKind::Nand, 8192, 2048, 512);
        assert!(nand.write_at(1, &[0]).is_err());
        nand.mark_bad(2048);
        assert!(nand.is_bad(2500).unwrap());
        assert!(nand.erase(2048, 2048).is_err());
    }

    #[test]
    fn power_cut_tears_the_kth_operation() {
        let mut f = PowerCutFlash::new(RamFlash::new(FlashKind::Nor, 4096, 1024, 1), Some(1));
        f.erase(0, 1024).unwrap();
        f.inner.data[0..8].fill(0xAA);
        assert!(f.write_at(0, &[0u8; 8]).is_err());
        assert_eq!(&f.inner.data[0..8], &[0, 0, 0, 0, 0xAA, 0xAA, 0xAA, 0xAA]);
        assert!(f.erase(0, 1024).is_err());
        assert!(f.is_cut());
    }
}
