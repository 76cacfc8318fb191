//! Raw partition writer: flashcp semantics, but incremental and NAND-aware.
//!
//! Two passes. The compare pass ([`scan_raw`]) reads the image once, hashing
//! it, and compares every erase block with flash, writing nothing; the write
//! pass ([`RawScan::write`]) erases, programs and reads back only the blocks
//! that differ. A journalled transaction records the hash between the two, so
//! the image is hashed exactly once. On NAND it
//! skips bad blocks like nandwrite (the data slides to the next good block),
//! retires a block whose erase or program fails (marks it bad, moves on), pads
//! the last page with 0xFF and never programs all-0xFF pages (so the erased
//! state stays writable for UBI/UBIFS). The comparison reads the first pages
//! of a block on their own and stops at the first difference. A block whose read needed ECC
//! correction is rewritten even if it matches ("scrub"), and one with an
//! uncorrectable ECC error counts as changed. The image must fit
//! the good blocks, which is checked before the first erase. The write pass
//! checks each block it writes against a CRC-32 taken by the compare pass, so
//! a source that changed in between is refused instead of written. Optionally
//! the whole image is read back once more the way the bootloader reads it.
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
    /// The SHA-256 the image was verified against (e.g. a bundle manifest's): the
    /// compare pass refuses an image that hashes otherwise, before any write.
    pub expect_sha256: Option<[u8; 32]>,
}

impl Default for RawOptions {
    fn default() -> Self {
        RawOptions {
            program_chunk: None,
            scrub_bitflips: true,
            skip_ff_chunks: true,
            final_read_back: true,
            expect_sha256: None,
        }
    }
}

fn hex_digest<S: serde::Serializer>(digest: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(digest))
}

/// What a raw write did (serialised as the agent reports it, the hash in hex).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RawReport {
    /// Image length in bytes.
    pub image_len: u64,
    /// SHA-256 of the image as read from the source and read back from flash.
    #[serde(serialize_with = "hex_digest")]
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
    /// The image does not hash as it was verified to.
    #[error("image hashes to {got}, not to the verified {expected}")]
    NotVerified { expected: String, got: String },
    /// The image source no longer holds what the compare pass read.
    #[error("image source changed after it was hashed (block at image offset {off:#x})")]
    SourceChanged { off: u64 },
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

/// One image block as the compare pass found it.
#[derive(Debug, Clone, Copy)]
struct BlockPlan {
    /// Physical offset of the good block it goes to.
    off: u64,
    /// Whether it must be erased and programmed.
    rewrite: bool,
    /// CRC-32 of the image block, rechecked before the block is written.
    crc: u32,
    /// Bad blocks skipped up to and including this block's placement.
    bad_before: u64,
}

/// The result of the compare pass: the image hash and which blocks differ.
/// Nothing has been written yet; [`RawScan::write`] does the writing.
#[derive(Debug, Clone)]
pub struct RawScan {
    sha256: [u8; 32],
    len: u64,
    plan: Vec<BlockPlan>,
}

impl RawScan {
    /// SHA-256 of the image.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// Erase blocks the write pass will rewrite (before any block goes bad).
    pub fn changed_blocks(&self) -> u64 {
        self.plan.iter().filter(|p| p.rewrite).count() as u64
    }

    /// The write pass: erase, program and read back the blocks that differ,
    /// then sync the flash, so the report means the image is durable.
    /// `src` must be the scanned image; a block whose bytes changed since the
    /// scan stops the write with [`RawError::SourceChanged`].
    pub fn write(
        &self,
        flash: &mut dyn Flash,
        src: &dyn ImageSource,
        opts: &RawOptions,
        progress: &mut dyn Progress,
    ) -> Result<RawReport, RawError> {
        let mut w = Writer::new(flash, opts, self.len, progress)?;
        let flips_before = w.flash.corrected_bitflips()?;
        w.write_pass(self, src)?;
        if opts.final_read_back {
            w.verify_whole(&self.sha256)?;
        }
        w.report.sha256 = self.sha256;
        w.report.corrected_bitflips = w.flash.corrected_bitflips()? - flips_before;
        w.flash.sync()?;
        Ok(w.report)
    }
}

/// The compare pass: check the size, hash the image and compare every erase
/// block with flash. Does no erase or program operation.
pub fn scan_raw(
    flash: &mut dyn Flash,
    src: &dyn ImageSource,
    opts: &RawOptions,
    progress: &mut dyn Progress,
) -> Result<RawScan, RawError> {
    let len = src.len();
    check_fits(flash, len)?;
    let mut w = Writer::new(flash, opts, len, progress)?;
    let eb = w.geo.erase_size as usize;
    let mut blocks = Blocks::new(src, eb, len)?;
    let mut hasher = Sha256::new();
    let mut plan = Vec::with_capacity(w.report.blocks as usize);
    let (mut next, mut bad) = (0u64, 0u64);
    w.progress.begin(Stage::Comparing, len);
    while let Some(used) = blocks.next_block()? {
        let off = w.next_good(&mut next, &mut bad)?;
        let want = &blocks.buf;
        hasher.update(&want[..used]);
        let rewrite = !w.matches(off, want, used)?;
        plan.push(BlockPlan {
            off,
            rewrite,
            crc: crc32fast::hash(&want[..used]),
            bad_before: bad,
        });
        w.progress.advance(blocks.done);
    }
    let sha256: [u8; 32] = hasher.finalize().into();
    match opts.expect_sha256 {
        Some(want) if want != sha256 => Err(RawError::NotVerified {
            expected: hex::encode(want),
            got: hex::encode(sha256),
        }),
        _ => Ok(RawScan { sha256, len, plan }),
    }
}

/// Write `src` to the start of `flash`, touching only blocks that differ:
/// [`scan_raw`] then [`RawScan::write`].
pub fn write_raw(
    flash: &mut dyn Flash,
    src: &dyn ImageSource,
    opts: &RawOptions,
    progress: &mut dyn Progress,
) -> Result<RawReport, RawError> {
    scan_raw(flash, src, opts, progress)?.write(flash, src, opts, progress)
}

/// The image, one erase block at a time (the last one padded with 0xFF).
struct Blocks<'a> {
    reader: Box<dyn io::Read + 'a>,
    buf: Vec<u8>,
    len: u64,
    done: u64,
}

impl<'a> Blocks<'a> {
    fn new(src: &'a dyn ImageSource, eb: usize, len: u64) -> Result<Self, RawError> {
        Ok(Blocks {
            reader: src.open().map_err(RawError::Source)?,
            buf: vec![0xFF; eb],
            len,
            done: 0,
        })
    }

    /// Reads the next block into `buf`; returns the image bytes in it.
    fn next_block(&mut self) -> Result<Option<usize>, RawError> {
        let used = (self.len - self.done).min(self.buf.len() as u64) as usize;
        if used == 0 {
            return Ok(None);
        }
        let n = read_full(&mut self.reader, &mut self.buf[..used]).map_err(RawError::Source)?;
        if n < used {
            let got = self.done + n as u64;
            return Err(RawError::ShortSource {
                expected: self.len,
                got,
            });
        }
        self.buf[used..].fill(0xFF);
        self.done += used as u64;
        Ok(Some(used))
    }
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

impl<'a> Writer<'a> {
    fn new(
        flash: &'a mut dyn Flash,
        opts: &'a RawOptions,
        len: u64,
        progress: &'a mut dyn Progress,
    ) -> Result<Self, RawError> {
        let geo = flash.geometry();
        let eb = geo.erase_size as usize;
        let chunk = match (opts.program_chunk, geo.is_nand) {
            (Some(c), _) => c.max(geo.write_size) as usize,
            (None, true) => geo.write_size as usize,
            (None, false) => eb.min(4096),
        };
        Ok(Writer {
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
        })
    }

    /// Rewrites the blocks the scan found different. Once a block has to be
    /// retired the rest of the image slides along and the scan's placement no
    /// longer holds, so from then on every block is compared again.
    fn write_pass(&mut self, scan: &RawScan, src: &dyn ImageSource) -> Result<(), RawError> {
        let eb = u64::from(self.geo.erase_size);
        let mut blocks = Blocks::new(src, eb as usize, scan.len)?;
        let mut slid: Option<u64> = None;
        self.progress.begin(Stage::Writing, scan.len);
        for p in &scan.plan {
            let start = blocks.done;
            let used = blocks.next_block()?.expect("the scan covered the image");
            let want = &blocks.buf;
            let same_bytes = || crc32fast::hash(&want[..used]) == p.crc;
            match slid {
                None if !p.rewrite => self.report.unchanged_blocks += 1,
                None => {
                    if !same_bytes() {
                        return Err(RawError::SourceChanged { off: start });
                    }
                    if let Placed::Retired = self.rewrite(p.off, want)? {
                        self.report.skipped_bad_blocks = p.bad_before;
                        let mut next = p.off / eb + 1;
                        self.place(&mut next, want, used)?;
                        slid = Some(next);
                    }
                }
                Some(ref mut next) => {
                    if !same_bytes() {
                        return Err(RawError::SourceChanged { off: start });
                    }
                    self.place(next, want, used)?;
                }
            }
            self.progress.advance(blocks.done);
        }
        if slid.is_none() {
            self.report.skipped_bad_blocks = scan.plan.last().map_or(0, |p| p.bad_before);
        }
        Ok(())
    }

    /// The next good block at or after block index `next`; advances `next`
    /// past it and counts the bad blocks skipped in `bad`.
    fn next_good(&mut self, next: &mut u64, bad: &mut u64) -> Result<u64, RawError> {
        let eb = u64::from(self.geo.erase_size);
        loop {
            let off = *next * eb;
            if *next >= self.geo.blocks() {
                return Err(RawError::NoSpace { off });
            }
            *next += 1;
            if self.geo.is_nand && self.flash.is_bad(off)? {
                *bad += 1;
                self.progress
                    .note(&format!("bad block at {off:#x} skipped"));
                continue;
            }
            return Ok(off);
        }
    }

    /// Put one image block at the next good physical block, comparing first
    /// and moving further along when a block has to be retired.
    fn place(&mut self, next: &mut u64, want: &[u8], used: usize) -> Result<(), RawError> {
        let mut bad = 0;
        loop {
            let off = self.next_good(next, &mut bad)?;
            self.report.skipped_bad_blocks += std::mem::take(&mut bad);
            if self.matches(off, want, used)? {
                self.report.unchanged_blocks += 1;
                return Ok(());
            }
            if let Placed::Done = self.rewrite(off, want)? {
                return Ok(());
            }
        }
    }

    /// Whether the block at `off` holds `want[..used]` well enough to be left
    /// alone: equal, and (when scrubbing) read without corrected bitflips.
    fn matches(&mut self, off: u64, want: &[u8], used: usize) -> Result<bool, RawError> {
        let flips = self.flash.corrected_bitflips()?;
        let holds = self.holds(off, want, used)?;
        let flipped = self.flash.corrected_bitflips()? > flips;
        Ok(holds && !(flipped && self.opts.scrub_bitflips))
    }

    /// Erase, program and read back one block.
    fn rewrite(&mut self, off: u64, want: &[u8]) -> Result<Placed, RawError> {
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
