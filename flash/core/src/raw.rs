//! Raw partition writer: flashcp semantics, but incremental and NAND-aware.
//!
//! For every erase block of the image it reads the flash block and compares;
//! only blocks that differ are erased, programmed and read back. On NAND it
//! skips bad blocks like nandwrite (the data slides to the next good block),
//! retires a block whose erase or program fails (marks it bad, moves on), pads
//! the last page with 0xFF and never programs all-0xFF pages (so the erased
//! state stays writable for UBI/UBIFS). The comparison reads the first pages
//! of a block on their own and stops at the first difference. A block whose read needed ECC
//! correction is rewritten even if it matches ("scrub"), and one with an
//! uncorrectable ECC error counts as changed. The image must fit
//! the good blocks, which is checked before the first erase. Finally the whole
//! image is read back the way the bootloader reads it and hashed.
//!
//! Interrupted writes are safe to re-run: the comparison makes the second run
//! skip every block the first one finished.

use std::io;

use sha2::{Digest, Sha256};

use crate::flash::{good_blocks, hash_image, Flash, FlashError, Geometry};
use crate::image::{read_full, ImageSource};
use crate::progress::{Progress, Stage};

/// Knobs of the raw writer.
#[derive(Debug, Clone)]
pub struct RawOptions {
    /// Bytes per program call; default: the page on NAND, 4 KiB (or the block) on NOR.
    pub program_chunk: Option<u32>,
    /// Rewrite matching blocks whose read reported corrected bitflips.
    pub scrub_bitflips: bool,
    /// Do not program chunks that are entirely 0xFF.
    pub skip_ff_chunks: bool,
    /// After writing, read the whole image once more the way the bootloader
    /// does and hash it. Without it the reported hash comes from the
    /// per-block checks: every unchanged block was read and compared in full,
    /// every rewritten one read back right after programming.
    pub final_read_back: bool,
}

impl Default for RawOptions {
    fn default() -> Self {
        RawOptions {
            program_chunk: None,
            scrub_bitflips: true,
            skip_ff_chunks: true,
            final_read_back: true,
        }
    }
}

/// What a raw write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawReport {
    /// Image length in bytes.
    pub image_len: u64,
    /// SHA-256 of the image as read from the source and read back from flash.
    pub sha256: [u8; 32],
    /// Erase blocks the image occupies.
    pub blocks: u64,
    /// Blocks that already held the right data and were not touched.
    pub unchanged_blocks: u64,
    /// Blocks erased and programmed.
    pub rewritten_blocks: u64,
    /// Bad blocks skipped on the way.
    pub skipped_bad_blocks: u64,
    /// Blocks retired (marked bad) because an erase or program failed.
    pub retired_blocks: Vec<u64>,
    /// Bitflips corrected by ECC during the write and verification.
    pub corrected_bitflips: u64,
}

/// Failure of a raw write.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// The image does not fit the good blocks (nothing was written).
    #[error(
        "image of {image} bytes does not fit: {capacity} bytes in good blocks ({bad_blocks} bad)"
    )]
    TooLarge {
        image: u64,
        capacity: u64,
        bad_blocks: u64,
    },
    /// Blocks went bad during the write and the rest no longer fits.
    #[error("ran out of good blocks at {off:#x} after retiring blocks during the write")]
    NoSpace { off: u64 },
    /// Reading the image source failed.
    #[error("reading image source: {0}")]
    Source(#[source] io::Error),
    /// The source ended before its announced length.
    #[error("image source ended at {got} of {expected} bytes")]
    ShortSource { expected: u64, got: u64 },
    /// A written block read back differently.
    #[error("verification failed: flash differs from the image at {off:#x}")]
    Verify { off: u64 },
    /// The image read back as a whole does not hash like the source.
    #[error("read-back hash {got} differs from image hash {expected}")]
    Digest { expected: String, got: String },
    /// A flash operation failed.
    #[error(transparent)]
    Flash(#[from] FlashError),
}

impl RawError {
    /// Whether the write stopped because the (simulated) power failed.
    pub fn is_power_cut(&self) -> bool {
        matches!(self, RawError::Flash(e) if e.is_power_cut())
    }
}

/// Check that `len` bytes fit the good blocks of `flash`; no operation is done.
pub fn check_fits(flash: &mut dyn Flash, len: u64) -> Result<(), RawError> {
    let g = flash.geometry();
    let good = good_blocks(flash)?.len() as u64;
    let capacity = good * u64::from(g.erase_size);
    if len > capacity {
        return Err(RawError::TooLarge {
            image: len,
            capacity,
            bad_blocks: g.blocks() - good,
        });
    }
    Ok(())
}

enum Placed {
    Done,
    Retired,
}

struct Writer<'a> {
    flash: &'a mut dyn Flash,
    geo: Geometry,
    chunk: usize,
    opts: &'a RawOptions,
    report: RawReport,
    have: Vec<u8>,
    progress: &'a mut dyn Progress,
}

/// Write `src` to the start of `flash`, touching only blocks that differ.
pub fn write_raw(
    flash: &mut dyn Flash,
    src: &dyn ImageSource,
    opts: &RawOptions,
    progress: &mut dyn Progress,
) -> Result<RawReport, RawError> {
    let len = src.len();
    check_fits(flash, len)?;
    let geo = flash.geometry();
    let eb = geo.erase_size as usize;
    let chunk = match (opts.program_chunk, geo.is_nand) {
        (Some(c), _) => c.max(geo.write_size) as usize,
        (None, true) => geo.write_size as usize,
        (None, false) => eb.min(4096),
    };
    let flips_before = flash.corrected_bitflips()?;
    let mut w = Writer {
        flash,
        geo,
        chunk,
        opts,
        report: RawReport {
            image_len: len,
            blocks: len.div_ceil(eb as u64),
            ..RawReport::default()
        },
        have: vec![0; eb],
        progress,
    };
    let digest = w.write_all(src)?;
    if opts.final_read_back {
        w.verify_whole(&digest)?;
    }
    w.report.sha256 = digest;
    w.report.corrected_bitflips = w.flash.corrected_bitflips()? - flips_before;
    Ok(w.report)
}

impl Writer<'_> {
    fn write_all(&mut self, src: &dyn ImageSource) -> Result<[u8; 32], RawError> {
        let len = self.report.image_len;
        let eb = self.geo.erase_size as usize;
        let mut reader = src.open().map_err(RawError::Source)?;
        let mut want = vec![0xFFu8; eb];
        let mut hasher = Sha256::new();
        let mut block = 0u64;
        self.progress.begin(Stage::Writing, len);
        for i in 0..self.report.blocks {
            let expect = (len - i * eb as u64).min(eb as u64) as usize;
            let n = read_full(&mut reader, &mut want).map_err(RawError::Source)?;
            if n < expect {
                let got = i * eb as u64 + n as u64;
                return Err(RawError::ShortSource { expected: len, got });
            }
            want[expect..].fill(0xFF);
            hasher.update(&want[..expect]);
            self.place(&mut block, &want, expect)?;
            self.progress.advance(i * eb as u64 + expect as u64);
        }
        Ok(hasher.finalize().into())
    }

    /// Put one image block at the next good physical block, retrying further
    /// along when a block has to be retired.
    fn place(&mut self, block: &mut u64, want: &[u8], used: usize) -> Result<(), RawError> {
        let eb = u64::from(self.geo.erase_size);
        loop {
            let off = *block * eb;
            if *block >= self.geo.blocks() {
                return Err(RawError::NoSpace { off });
            }
            *block += 1;
            if self.geo.is_nand && self.flash.is_bad(off)? {
                self.report.skipped_bad_blocks += 1;
                self.progress
                    .note(&format!("bad block at {off:#x} skipped"));
                continue;
            }
            if let Placed::Done = self.place_at(off, want, used)? {
                return Ok(());
            }
        }
    }

    fn place_at(&mut self, off: u64, want: &[u8], used: usize) -> Result<Placed, RawError> {
        let flips = self.flash.corrected_bitflips()?;
        let holds = self.holds(off, want, used)?;
        let flipped = self.flash.corrected_bitflips()? > flips;
        if holds && !(flipped && self.opts.scrub_bitflips) {
            self.report.unchanged_blocks += 1;
            return Ok(Placed::Done);
        }
        match self.flash.erase_block(off) {
            Err(FlashError::EraseFailed { .. }) if self.geo.is_nand => return self.retire(off),
            r => r?,
        }
        for (i, c) in want.chunks(self.chunk).enumerate() {
            if self.opts.skip_ff_chunks && c.iter().all(|&b| b == 0xFF) {
                continue;
            }
            match self.flash.program(off + (i * self.chunk) as u64, c) {
                Err(FlashError::ProgramFailed { .. }) if self.geo.is_nand => {
                    return self.retire(off)
                }
                r => r?,
            }
        }
        self.flash.read(off, &mut self.have)?;
        if let Some(p) = self.have.iter().zip(want).position(|(a, b)| a != b) {
            return Err(RawError::Verify {
                off: off + p as u64,
            });
        }
        self.report.rewritten_blocks += 1;
        Ok(Placed::Done)
    }

    /// Whether the block at `off` already holds `want[..used]`. The first
    /// pages are read on their own, so a block that differs (the usual case
    /// when the whole image changed) costs a page read, not a block read.
    /// Old data the ECC cannot fix is simply different data.
    fn holds(&mut self, off: u64, want: &[u8], used: usize) -> Result<bool, RawError> {
        let first = (self.geo.write_size as usize).max(4096).min(used);
        for (start, end) in [(0, first), (first, used)] {
            if start == end {
                continue;
            }
            match self
                .flash
                .read(off + start as u64, &mut self.have[start..end])
            {
                Err(FlashError::Ecc { .. }) => return Ok(false),
                r => r?,
            }
            if self.have[start..end] != want[start..end] {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn retire(&mut self, off: u64) -> Result<Placed, RawError> {
        self.flash.mark_bad(off)?;
        self.report.retired_blocks.push(off);
        self.progress
            .note(&format!("block at {off:#x} failed and was marked bad"));
        Ok(Placed::Retired)
    }

    fn verify_whole(&mut self, digest: &[u8; 32]) -> Result<(), RawError> {
        let len = self.report.image_len;
        self.progress.begin(Stage::Verifying, len);
        let got = hash_image(self.flash, len)?.ok_or(RawError::NoSpace { off: self.geo.size })?;
        self.progress.advance(len);
        if &got != digest {
            return Err(RawError::Digest {
                expected: hex::encode(digest),
                got: hex::encode(got),
            });
        }
        Ok(())
    }
}
