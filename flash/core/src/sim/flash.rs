//! `SimFlash`: a RAM-backed flash with NOR and NAND semantics and fault
//! injection.
//!
//! Model:
//! * Erased bytes read 0xFF. `program` ANDs the data into the array (bits only
//!   go 1 → 0), which is what NOR does; on NAND a page may be programmed once
//!   per erase, a second program fails with [`FlashError::NotErased`].
//! * NAND factory bad blocks ([`SimFlash::set_bad`]), blocks that fail their
//!   next erase ([`SimFlash::fail_erase`]; the caller is expected to mark them
//!   bad), corrected bitflips ([`SimFlash::add_bitflip`]: reads covering the
//!   offset return correct data and bump [`Flash::corrected_bitflips`]), and
//!   uncorrectable ECC errors ([`SimFlash::add_uncorrectable`], until the
//!   block is erased), silent corruption ([`SimFlash::corrupt_program`]: a program of that offset
//!   stores one flipped bit and reports success).
//! * Power cuts via the shared [`PowerRail`]. The torn patterns are
//!   deterministic: a torn **program** stores only the first half of its data
//!   (rounded down to the write unit, at least nothing) and, on NAND, leaves the
//!   whole range marked programmed; a torn **erase** sets the first half of the
//!   block to 0xFF (pages erased) and leaves the second half as it was.
//!   Reads, bad-block queries and `mark_bad` are not counted as operations.
//! * Durability: [`Flash::sync`] is one operation. What a cut does to the erases
//!   and programs since the last sync (torn ones included) is the rail's
//!   [`Unsynced`](crate::power::Unsynced) setting: kept (NAND, NOR, the default),
//!   lost, or the first few kept (block2mtd). The chip takes them back at its
//!   first use after the cut, or in [`SimFlash::fork`].

use std::collections::BTreeSet;

use super::cache::WriteCache;
use crate::flash::{Flash, FlashError, Geometry};
use crate::power::{PowerRail, Tick};

/// One erase or program as it reached the cells, to replay after a cut.
#[derive(Debug, Clone)]
enum CellWrite {
    /// Bytes set to 0xFF.
    Wipe { off: u64, len: u64 },
    /// `data` programmed at `off`; the pages of `span` bytes count as programmed
    /// (more than `data` when the program was torn).
    Store {
        off: u64,
        data: Vec<u8>,
        span: usize,
    },
}

/// Operation counters, for benches and "unchanged blocks are untouched" tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Completed program calls.
    pub programs: u64,
    /// Bytes passed to completed program calls.
    pub programmed_bytes: u64,
    /// Completed block erases.
    pub erases: u64,
    /// Bytes erased by completed erases.
    pub erased_bytes: u64,
}

/// RAM-backed simulated flash partition.
#[derive(Debug)]
pub struct SimFlash {
    geo: Geometry,
    data: Vec<u8>,
    programmed: Vec<bool>,
    bad: Vec<bool>,
    fail_erase: BTreeSet<u64>,
    bitflips: BTreeSet<u64>,
    uncorrectable: BTreeSet<u64>,
    corrupt: BTreeSet<u64>,
    corrected: u64,
    stats: OpStats,
    rail: PowerRail,
    cache: WriteCache<(Vec<u8>, Vec<bool>), CellWrite>,
}

impl SimFlash {
    /// A NOR partition of `blocks` erase blocks, fully erased.
    pub fn nor(blocks: u64, erase_size: u32) -> Self {
        Self::new(blocks, erase_size, 1, false)
    }

    /// A NAND partition with pages of `page` bytes, fully erased.
    pub fn nand(blocks: u64, erase_size: u32, page: u32) -> Self {
        Self::new(blocks, erase_size, page, true)
    }

    fn new(blocks: u64, erase_size: u32, write_size: u32, is_nand: bool) -> Self {
        assert!(erase_size % write_size == 0, "page must divide block");
        let size = blocks * u64::from(erase_size);
        SimFlash {
            geo: Geometry {
                size,
                erase_size,
                write_size,
                is_nand,
            },
            data: vec![0xFF; size as usize],
            programmed: vec![false; (size / u64::from(write_size)) as usize],
            bad: vec![false; blocks as usize],
            fail_erase: BTreeSet::new(),
            bitflips: BTreeSet::new(),
            uncorrectable: BTreeSet::new(),
            corrupt: BTreeSet::new(),
            corrected: 0,
            stats: OpStats::default(),
            rail: PowerRail::new(),
            cache: WriteCache::default(),
        }
    }

    /// Use `rail` (shared with other simulated parts) instead of a private one.
    pub fn with_rail(mut self, rail: PowerRail) -> Self {
        self.rail = rail;
        self
    }

    /// The power rail this flash counts its operations on.
    pub fn rail(&self) -> &PowerRail {
        &self.rail
    }

    /// Shorthand for `rail().cut_after(k)`.
    pub fn cut_after(&self, k: u64) {
        self.rail.cut_after(k);
    }

    /// Shorthand for `rail().reboot()`.
    pub fn reboot(&self) {
        self.rail.reboot();
    }

    /// Operation counters.
    pub fn stats(&self) -> OpStats {
        self.stats
    }

    /// Zero the operation counters.
    pub fn reset_stats(&mut self) {
        self.stats = OpStats::default();
    }

    /// Factory-programmed content: write `data` at `off` without counting an
    /// operation, as a factory programmer would (erased first). NAND pages that
    /// receive non-0xFF bytes become programmed.
    pub fn load(&mut self, off: u64, data: &[u8]) {
        let ws = self.geo.write_size as usize;
        load_cells((&mut self.data, &mut self.programmed), ws, off, data);
        if let Some((cells, pages)) = self.cache.synced_state() {
            load_cells((cells, pages), ws, off, data);
        }
    }

    /// Raw array contents (no ECC, no bad-block skipping), as last written: after
    /// a cut that loses unsynced writes, the chip as the next boot finds it is
    /// seen after its next use or in a [`SimFlash::fork`].
    pub fn contents(&self) -> &[u8] {
        &self.data
    }

    /// The cells themselves, for tests that corrupt stored data behind the
    /// driver's back (no operation counted, page state unchanged).
    pub fn contents_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// An independent chip with the same cells, page state, bad blocks and
    /// armed faults on a power rail of its own (power on, no cut armed): one
    /// starting state from which every cut point can be tried, and the chip as
    /// the next boot finds it.
    pub fn fork(&self) -> SimFlash {
        let mut chip = SimFlash {
            geo: self.geo,
            data: self.data.clone(),
            programmed: self.programmed.clone(),
            bad: self.bad.clone(),
            fail_erase: self.fail_erase.clone(),
            bitflips: self.bitflips.clone(),
            uncorrectable: self.uncorrectable.clone(),
            corrupt: self.corrupt.clone(),
            corrected: self.corrected,
            stats: self.stats,
            rail: self.rail.clone(),
            cache: self.cache.clone(),
        };
        chip.settle();
        chip.rail = PowerRail::new();
        chip.rail.set_unsynced(self.rail.unsynced());
        chip.cache = chip.cache.for_new_rail();
        chip
    }

    /// Mark block `block` (index) bad, as at the factory.
    pub fn set_bad(&mut self, block: u64) {
        self.bad[block as usize] = true;
    }

    /// Make every erase of block `block` (index) fail from now on.
    pub fn fail_erase(&mut self, block: u64) {
        self.fail_erase.insert(block);
    }

    /// Reads covering byte `off` report one corrected bitflip.
    pub fn add_bitflip(&mut self, off: u64) {
        self.bitflips.insert(off);
    }

    /// Reads covering byte `off` fail with an uncorrectable ECC error until
    /// its block is erased.
    pub fn add_uncorrectable(&mut self, off: u64) {
        self.uncorrectable.insert(off);
    }

    /// The next programs covering byte `off` store bit 0 of that byte flipped.
    pub fn corrupt_program(&mut self, off: u64) {
        self.corrupt.insert(off);
    }

    fn check(&self, op: &'static str, off: u64, len: u64, unit: u64) -> Result<(), FlashError> {
        let ok = off % unit == 0
            && len % unit == 0
            && off.checked_add(len).is_some_and(|e| e <= self.geo.size);
        if ok {
            Ok(())
        } else {
            Err(FlashError::Range { op, off, len })
        }
    }

    fn page_range(&self, off: u64, len: usize) -> std::ops::Range<usize> {
        let ws = u64::from(self.geo.write_size);
        (off / ws) as usize..((off + len as u64) / ws) as usize
    }

    /// After a cut this chip has not seen: back to the synced cells plus the
    /// writes the rail says survive.
    fn settle(&mut self) {
        if let Some(((data, programmed), writes)) = self.cache.after_cut(&self.rail) {
            (self.data, self.programmed) = (data, programmed);
            writes.iter().for_each(|w| self.apply(w));
        }
    }

    fn write(&mut self, w: CellWrite) {
        let live = || (self.data.clone(), self.programmed.clone());
        self.cache.note(&self.rail, live, w.clone());
        self.apply(&w);
    }

    fn apply(&mut self, w: &CellWrite) {
        match w {
            CellWrite::Wipe { off, len } => self.wipe(*off, *len),
            CellWrite::Store { off, data, span } => {
                self.store(*off, data);
                let pages = self.page_range(*off, *span);
                self.programmed[pages].iter_mut().for_each(|p| *p = true);
            }
        }
    }

    fn store(&mut self, off: u64, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let at = off + i as u64;
            let mut v = b;
            if self.corrupt.contains(&at) {
                v ^= 1;
            }
            self.data[at as usize] &= v;
        }
        let pages = self.page_range(off, data.len());
        self.programmed[pages].iter_mut().for_each(|p| *p = true);
    }

    fn wipe(&mut self, off: u64, len: u64) {
        self.data[off as usize..(off + len) as usize].fill(0xFF);
        let stale: Vec<u64> = self.uncorrectable.range(off..off + len).copied().collect();
        stale.iter().for_each(|o| {
            self.uncorrectable.remove(o);
        });
        let pages = self.page_range(off, len as usize);
        self.programmed[pages].iter_mut().for_each(|p| *p = false);
    }

    fn torn_len(&self, len: usize) -> usize {
        let ws = self.geo.write_size as usize;
        len / 2 / ws * ws
    }
}

impl Flash for SimFlash {
    fn geometry(&self) -> Geometry {
        self.geo
    }

    fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.settle();
        self.check("read", off, buf.len() as u64, 1)?;
        if let Some(&bad) = self.uncorrectable.range(off..off + buf.len() as u64).next() {
            return Err(FlashError::Ecc { off: bad });
        }
        buf.copy_from_slice(&self.data[off as usize..off as usize + buf.len()]);
        let flips = self.bitflips.range(off..off + buf.len() as u64).count();
        self.corrected += flips as u64;
        Ok(())
    }

    fn erase_block(&mut self, off: u64) -> Result<(), FlashError> {
        self.settle();
        let eb = u64::from(self.geo.erase_size);
        self.check("erase", off, eb, eb)?;
        match self.rail.tick() {
            Tick::Dead => return Err(FlashError::PowerCut { op: "erase", off }),
            Tick::Tear => {
                self.write(CellWrite::Wipe { off, len: eb / 2 });
                return Err(FlashError::PowerCut { op: "erase", off });
            }
            Tick::Run => {}
        }
        let block = off / eb;
        if self.bad[block as usize] || self.fail_erase.contains(&block) {
            return Err(FlashError::EraseFailed { off });
        }
        self.write(CellWrite::Wipe { off, len: eb });
        self.stats.erases += 1;
        self.stats.erased_bytes += eb;
        Ok(())
    }

    fn program(&mut self, off: u64, data: &[u8]) -> Result<(), FlashError> {
        self.settle();
        let ws = u64::from(self.geo.write_size);
        self.check("program", off, data.len() as u64, ws)?;
        let block = off / u64::from(self.geo.erase_size);
        if self.geo.is_nand && self.programmed[self.page_range(off, data.len())].contains(&true) {
            return Err(FlashError::NotErased { off });
        }
        match self.rail.tick() {
            Tick::Dead => return Err(FlashError::PowerCut { op: "program", off }),
            Tick::Tear => {
                let half = self.torn_len(data.len());
                self.write(CellWrite::Store {
                    off,
                    data: data[..half].to_vec(),
                    span: data.len(),
                });
                return Err(FlashError::PowerCut { op: "program", off });
            }
            Tick::Run => {}
        }
        if self.bad[block as usize] {
            return Err(FlashError::ProgramFailed { off });
        }
        self.write(CellWrite::Store {
            off,
            data: data.to_vec(),
            span: data.len(),
        });
        self.stats.programs += 1;
        self.stats.programmed_bytes += data.len() as u64;
        Ok(())
    }

    fn is_bad(&mut self, off: u64) -> Result<bool, FlashError> {
        self.settle();
        self.check("is_bad", off, 0, 1)?;
        Ok(self.geo.is_nand && self.bad[(off / u64::from(self.geo.erase_size)) as usize])
    }

    fn mark_bad(&mut self, off: u64) -> Result<(), FlashError> {
        self.settle();
        self.check("mark_bad", off, 0, 1)?;
        if self.rail.is_dead() {
            return Err(FlashError::PowerCut {
                op: "mark_bad",
                off,
            });
        }
        self.bad[(off / u64::from(self.geo.erase_size)) as usize] = true;
        Ok(())
    }

    fn corrected_bitflips(&mut self) -> Result<u64, FlashError> {
        self.settle();
        Ok(self.corrected)
    }

    fn sync(&mut self) -> Result<(), FlashError> {
        self.settle();
        match self.rail.tick() {
            Tick::Run => {
                self.cache.synced();
                Ok(())
            }
            Tick::Tear | Tick::Dead => Err(FlashError::PowerCut { op: "sync", off: 0 }),
        }
    }
}

/// Factory-programmed bytes: cells set as given, pages holding anything but 0xFF
/// programmed.
fn load_cells(cells: (&mut [u8], &mut [bool]), write_size: usize, off: u64, data: &[u8]) {
    let (bytes, pages) = cells;
    let start = off as usize;
    bytes[start..start + data.len()].copy_from_slice(data);
    for (i, chunk) in data.chunks(write_size).enumerate() {
        if chunk.iter().any(|&b| b != 0xFF) {
            pages[start / write_size + i] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nor_program_only_clears_bits() {
        let mut f = SimFlash::nor(2, 256);
        f.program(0, &[0xF0]).unwrap();
        f.program(0, &[0x3C]).unwrap();
        let mut b = [0u8; 2];
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0x30, 0xFF]);
        f.erase_block(0).unwrap();
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0xFF, 0xFF]);
        assert_eq!(f.stats().erases, 1);
        assert_eq!(f.stats().programs, 2);
    }

    #[test]
    fn nand_refuses_second_program_and_unaligned() {
        let mut f = SimFlash::nand(2, 256, 64);
        f.program(64, &[0xAA; 64]).unwrap();
        assert!(matches!(
            f.program(64, &[0x00; 64]),
            Err(FlashError::NotErased { off: 64 })
        ));
        assert!(matches!(
            f.program(1, &[0; 64]),
            Err(FlashError::Range { .. })
        ));
        assert!(matches!(
            f.program(0, &[0; 10]),
            Err(FlashError::Range { .. })
        ));
        f.erase_block(0).unwrap();
        f.program(64, &[0x00; 64]).unwrap();
    }

    #[test]
    fn torn_program_and_erase_patterns() {
        let mut f = SimFlash::nand(2, 256, 16);
        f.program(0, &[0u8; 64]).unwrap();
        f.cut_after(0);
        assert!(f.erase_block(0).unwrap_err().is_power_cut());
        assert!(f.contents()[..128].iter().all(|&b| b == 0xFF));
        assert!(f.contents()[128..256].iter().all(|&b| b == 0xFF));
        assert!(f.program(128, &[0u8; 16]).unwrap_err().is_power_cut());
        f.reboot();
        f.program(256, &[0u8; 16]).unwrap();
        f.cut_after(0);
        assert!(f.program(272, &[0x11u8; 64]).unwrap_err().is_power_cut());
        assert_eq!(&f.contents()[272..304], &[0x11; 32]);
        assert!(f.contents()[304..336].iter().all(|&b| b == 0xFF));
        f.reboot();
        // The torn range counts as programmed even where it still reads 0xFF.
        assert!(matches!(
            f.program(320, &[0; 16]),
            Err(FlashError::NotErased { .. })
        ));
    }

    #[test]
    fn nor_programs_only_clear_bits_and_nand_needs_pages() {
        let mut nor = SimFlash::nor(4, 1024);
        nor.program(3, &[0x0F]).unwrap();
        nor.program(3, &[0xF1]).unwrap();
        assert_eq!(nor.contents()[3], 0x01);
        crate::flash::erase_range(&mut nor, 0, 1024).unwrap();
        assert_eq!(nor.contents()[3], 0xFF);
        assert!(crate::flash::erase_range(&mut nor, 1, 1024).is_err());
        let mut nand = SimFlash::nand(4, 2048, 512);
        assert!(nand.program(1, &[0]).is_err());
        nand.mark_bad(2048).unwrap();
        assert!(nand.is_bad(2500).unwrap());
        assert!(crate::flash::erase_range(&mut nand, 2048, 2048).is_err());
    }

    #[test]
    fn power_cut_tears_the_kth_operation() {
        let mut f = SimFlash::nor(4, 1024);
        f.cut_after(1);
        f.erase_block(0).unwrap();
        f.contents_mut()[0..8].fill(0xAA);
        assert!(f.program(0, &[0u8; 8]).unwrap_err().is_power_cut());
        assert_eq!(&f.contents()[0..8], &[0, 0, 0, 0, 0xAA, 0xAA, 0xAA, 0xAA]);
        assert!(f.erase_block(0).unwrap_err().is_power_cut());
        assert!(f.rail().is_dead());
    }

    #[test]
    fn fork_copies_the_cells_onto_a_rail_of_its_own() {
        let mut f = SimFlash::nand(2, 256, 64);
        f.program(0, &[0x12; 64]).unwrap();
        f.set_bad(1);
        f.cut_after(0);
        let mut g = f.fork();
        assert!(f.erase_block(0).unwrap_err().is_power_cut());
        assert!(f.rail().is_dead() && !g.rail().is_dead());
        assert_eq!(&g.contents()[..64], &[0x12; 64]);
        assert!(g.is_bad(256).unwrap());
        assert!(matches!(
            g.program(0, &[0; 64]),
            Err(FlashError::NotErased { off: 0 })
        ));
        g.contents_mut()[3] ^= 0xFF;
        let mut b = [0u8; 4];
        g.read(0, &mut b).unwrap();
        assert_eq!(b, [0x12, 0x12, 0x12, 0xED]);
    }

    #[test]
    fn a_cut_loses_unsynced_writes_when_the_rail_says_so() {
        let mut f = SimFlash::nor(2, 256);
        f.rail().set_unsynced(crate::power::Unsynced::Lost);
        f.program(0, &[0x11; 4]).unwrap();
        f.sync().unwrap();
        f.program(4, &[0x22; 4]).unwrap();
        f.erase_block(256).unwrap();
        f.rail().cut_now();
        let mut next_boot = f.fork();
        f.reboot();
        let mut b = [0u8; 8];
        for chip in [&mut f, &mut next_boot] {
            chip.read(0, &mut b).unwrap();
            assert_eq!(b, [0x11, 0x11, 0x11, 0x11, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        f.cut_after(1);
        f.program(4, &[0x33; 4]).unwrap();
        assert!(f.sync().unwrap_err().is_power_cut(), "the sync is torn");
        f.reboot();
        f.read(0, &mut b).unwrap();
        assert_eq!(&b[4..], &[0xFF; 4], "a torn sync syncs nothing");
    }

    #[test]
    fn bitflips_are_counted_and_data_is_corrected() {
        let mut f = SimFlash::nand(2, 256, 64);
        f.load(0, &[0x5A; 256]);
        f.add_bitflip(10);
        f.add_bitflip(300);
        let mut b = [0u8; 256];
        f.read(0, &mut b).unwrap();
        assert_eq!(b, [0x5A; 256]);
        assert_eq!(f.corrected_bitflips().unwrap(), 1);
        f.read(256, &mut b).unwrap();
        assert_eq!(f.corrected_bitflips().unwrap(), 2);
    }

    #[test]
    fn bad_and_weak_blocks() {
        let mut f = SimFlash::nand(4, 256, 64);
        f.set_bad(1);
        f.fail_erase(2);
        assert!(f.is_bad(256).unwrap());
        assert!(!f.is_bad(512).unwrap());
        assert!(matches!(
            f.erase_block(512),
            Err(FlashError::EraseFailed { .. })
        ));
        f.mark_bad(512).unwrap();
        assert!(f.is_bad(512).unwrap());
        let mut nor = SimFlash::nor(2, 256);
        nor.set_bad(0);
        assert!(!nor.is_bad(0).unwrap(), "NOR has no bad-block table");
    }
}
