//! Patches in the manner of `zstd --patch-from`: the target is cut into segments, and each
//! segment is one zstd frame compressed with a window of the base as its raw-content dictionary,
//! so a recompiled library costs what zstd's long matcher finds against its previous build
//! rather than what 16-byte block matching finds.
//!
//! ```text
//! "LXP1"  u64le base_len  [32] base sha256  u64le target_len
//! segments, until target_len bytes are produced:
//!         u64le ref_off  u32le ref_len  u32le out_len  u32le frame_len  [frame_len] zstd frame
//! ```
//! The decoder holds one base window (at most [`MAX_REF`] bytes, twice while a frame starts)
//! and one segment (at most [`MAX_SEG`]) whatever the size of base and target. Windows move
//! forward only (`ref_off` and `ref_off + ref_len` never decrease), so a base that can only be
//! read once, front to back (a NAR serialised from a store path), serves every segment.
//! Decoding is pure Rust (ruzstd); encoding needs libzstd (the `encode` feature).

use std::io::{self, Read};

use ruzstd::decoding::{Dictionary, FrameDecoder, StreamingDecoder};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 4] = b"LXP1";
/// Largest base window one segment may use as its dictionary.
pub const MAX_REF: u32 = 8 << 20;
/// Largest segment of the target.
pub const MAX_SEG: u32 = 2 << 20;
/// Largest zstd frame of one segment: its worst case grows a segment by well under 1/64.
pub const MAX_FRAME: u32 = MAX_SEG + (MAX_SEG >> 6) + (64 << 10);
/// Largest window a frame may declare: a window covering a whole base window and segment.
pub const MAX_WINDOW_LOG: u32 = 24;
/// Length of the header before the first segment.
pub const HEADER_LEN: usize = 4 + 8 + 32 + 8;

/// The entropy tables ruzstd needs to build a [`Dictionary`] (it has no constructor for raw
/// content). They are never used: the frames are compressed against raw content, which carries
/// no tables, so every block brings its own. Made once by `zstd --train --maxdict=1024` over
/// the first 4 KiB of a few hundred executables; only its tables are read.
const TABLES: &[u8] = include_bytes!("delta_patch.zdict");
/// The id under which the base window is handed to the frame decoder.
const DICT_ID: u32 = 1;

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("patch: {}", msg.into()))
}

/// Where a patch's base comes from: a front-to-back reader of its bytes.
pub trait Base {
    /// Bytes `off..off + len` of the base; `off` and the end never go backwards between calls.
    fn window(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// A [`Base`] read once, front to back, holding only the current window.
pub struct SequentialBase<R: Read> {
    inner: R,
    held: Vec<u8>,
    /// Offset of `held[0]` in the base.
    start: u64,
}

impl<R: Read> SequentialBase<R> {
    pub fn new(inner: R) -> Self {
        SequentialBase {
            inner,
            held: Vec::new(),
            start: 0,
        }
    }
}

impl<R: Read> Base for SequentialBase<R> {
    fn window(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>> {
        if off < self.start {
            return Err(invalid("a base window goes backwards"));
        }
        let end = off
            .checked_add(len as u64)
            .ok_or_else(|| invalid("base window past the end"))?;
        let held_end = self.start + self.held.len() as u64;
        let drop = usize::try_from((off - self.start).min(self.held.len() as u64))
            .map_err(|_| invalid("base window too far"))?;
        self.held.drain(..drop);
        self.start += drop as u64;
        if off > held_end {
            let skip = off - held_end;
            let skipped = io::copy(&mut (&mut self.inner).take(skip), &mut io::sink())?;
            if skipped < skip {
                return Err(invalid("the base ended before a window"));
            }
            self.start = off;
        }
        let want = end - self.start - self.held.len() as u64;
        let got = (&mut self.inner).take(want).read_to_end(&mut self.held)?;
        if (got as u64) < want {
            return Err(invalid("the base ended before a window"));
        }
        Ok(self.held[..len].to_vec())
    }
}

/// A [`Base`] with random access (a flash partition, a file).
pub struct SeekBase<R: Read + io::Seek>(pub R);

impl<R: Read + io::Seek> Base for SeekBase<R> {
    fn window(&mut self, off: u64, len: usize) -> io::Result<Vec<u8>> {
        self.0.seek(io::SeekFrom::Start(off))?;
        let mut buf = Vec::new();
        (&mut self.0).take(len as u64).read_to_end(&mut buf)?;
        if buf.len() < len {
            return Err(invalid("the base ended before a window"));
        }
        Ok(buf)
    }
}

/// The patch's header: what its base must be, and how long its target is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchHeader {
    pub base_len: u64,
    pub base_sha256: [u8; 32],
    pub target_len: u64,
}

impl PatchHeader {
    pub fn read(r: &mut impl Read) -> io::Result<Self> {
        let mut head = [0u8; HEADER_LEN];
        r.read_exact(&mut head)?;
        if &head[..4] != MAGIC {
            return Err(invalid("bad magic"));
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut base_sha256 = [0u8; 32];
        base_sha256.copy_from_slice(&head[12..44]);
        Ok(PatchHeader {
            base_len: u64_at(4),
            base_sha256,
            target_len: u64_at(44),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.base_len.to_le_bytes());
        out.extend_from_slice(&self.base_sha256);
        out.extend_from_slice(&self.target_len.to_le_bytes());
        out
    }
}

/// Checks that `base` is the one a header names: its length and sha256, read front to back.
pub fn check_base(header: &PatchHeader, base: &mut impl Read) -> io::Result<()> {
    let mut hash = HashCount::default();
    io::copy(base, &mut hash)?;
    if hash.len != header.base_len || hash.sha.finalize()[..] != header.base_sha256 {
        return Err(invalid(
            "made against a different base than the one on this device",
        ));
    }
    Ok(())
}

#[derive(Default)]
struct HashCount {
    sha: Sha256,
    len: u64,
}

impl io::Write for HashCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sha.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Streams a patch's target out of its segments and a base (whose hash the caller checked with
/// [`check_base`]: the segments only read windows of it).
pub struct PatchReader<R: Read, B: Base> {
    ops: R,
    base: B,
    header: PatchHeader,
    decoder: FrameDecoder,
    segment: Vec<u8>,
    at: usize,
    produced: u64,
    /// The previous segment's window, which the next may not go behind.
    last: (u64, u64),
}

impl<R: Read, B: Base> PatchReader<R, B> {
    /// Reads past the header, which the caller read with [`PatchHeader::read`].
    pub fn new(header: PatchHeader, ops: R, base: B) -> io::Result<Self> {
        let mut decoder = FrameDecoder::new();
        decoder.set_max_window_size(1 << MAX_WINDOW_LOG);
        Ok(PatchReader {
            ops,
            base,
            header,
            decoder,
            segment: Vec::new(),
            at: 0,
            produced: 0,
            last: (0, 0),
        })
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.ops.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads and decodes the next segment into `self.segment`.
    fn next_segment(&mut self) -> io::Result<()> {
        let mut off = [0u8; 8];
        self.ops.read_exact(&mut off)?;
        let off = u64::from_le_bytes(off);
        let (ref_len, out_len, frame_len) = (self.u32()?, self.u32()?, self.u32()?);
        let end = off
            .checked_add(u64::from(ref_len))
            .filter(|&e| e <= self.header.base_len)
            .ok_or_else(|| invalid("a base window reaches past the base"))?;
        if ref_len > MAX_REF || out_len > MAX_SEG || frame_len > MAX_FRAME || out_len == 0 {
            return Err(invalid(format!(
                "segment of {out_len} bytes from a {frame_len}-byte frame against a {ref_len}-byte window is over the limits ({MAX_SEG}, {MAX_FRAME}, {MAX_REF}) or empty"
            )));
        }
        if u64::from(out_len) > self.header.target_len - self.produced {
            return Err(invalid("longer than announced"));
        }
        if off < self.last.0 || end < self.last.1 {
            return Err(invalid("a base window goes backwards"));
        }
        self.last = (off, end);
        let window = self.base.window(off, ref_len as usize)?;
        self.segment.clear();
        self.at = 0;
        let mut frame = (&mut self.ops).take(u64::from(frame_len));
        decode_frame(
            &mut self.decoder,
            window,
            &mut frame,
            out_len,
            &mut self.segment,
        )?;
        if frame.limit() != 0 {
            return Err(invalid("bytes after a segment's frame"));
        }
        Ok(())
    }
}

/// Decodes one frame against `window` as its dictionary, into `out`, which must come to exactly
/// `out_len` bytes.
fn decode_frame(
    decoder: &mut FrameDecoder,
    window: Vec<u8>,
    frame: &mut impl Read,
    out_len: u32,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let zstd = |e: ruzstd::decoding::errors::FrameDecoderError| invalid(e.to_string());
    decoder.add_dict(with_content(window)?).map_err(zstd)?;
    let mut dec = StreamingDecoder::new_with_decoder(frame, &mut *decoder).map_err(zstd)?;
    dec.decoder.force_dict(DICT_ID).map_err(zstd)?;
    // The decoder copied the window in: drop the map's copy.
    dec.decoder
        .add_dict(with_content(Vec::new())?)
        .map_err(zstd)?;
    let got = (&mut dec)
        .take(u64::from(out_len) + 1)
        .read_to_end(out)
        .map_err(|e| invalid(format!("segment frame: {e}")))?;
    if got != out_len as usize {
        return Err(invalid(format!(
            "a segment decodes to {got} bytes, announced {out_len}"
        )));
    }
    Ok(())
}

fn with_content(content: Vec<u8>) -> io::Result<Dictionary> {
    let mut d = Dictionary::decode_dict(TABLES).map_err(|e| invalid(e.to_string()))?;
    d.id = DICT_ID;
    d.dict_content = content;
    // Raw content starts with zstd's initial repeat offsets.
    d.offset_hist = [1, 4, 8];
    Ok(d)
}

impl<R: Read, B: Base> Read for PatchReader<R, B> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at == self.segment.len() {
            if self.produced == self.header.target_len {
                return Ok(0);
            }
            self.next_segment()?;
        }
        let n = buf.len().min(self.segment.len() - self.at);
        buf[..n].copy_from_slice(&self.segment[self.at..self.at + n]);
        self.at += n;
        self.produced += n as u64;
        Ok(n)
    }
}

/// Walks the segments after `header` without a base, checking their limits and that they
/// frame exactly `target_len` bytes and the rest of `r` (a packer cannot do more without the
/// base, which only the device has).
pub fn check_segments(r: &mut impl Read, header: &PatchHeader) -> io::Result<()> {
    let mut produced = 0u64;
    let mut last = (0u64, 0u64);
    while produced < header.target_len {
        let mut seg = [0u8; 20];
        r.read_exact(&mut seg)?;
        let word = |at: usize| u32::from_le_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]);
        let off = u64::from_le_bytes(seg[..8].try_into().map_err(|_| invalid("segment"))?);
        let (ref_len, out_len, frame_len) = (word(8), word(12), word(16));
        let end = off.saturating_add(u64::from(ref_len));
        let over = ref_len > MAX_REF || out_len > MAX_SEG || frame_len > MAX_FRAME || out_len == 0;
        if over || end > header.base_len || off < last.0 || end < last.1 {
            return Err(invalid("a segment is over the limits or goes backwards"));
        }
        last = (off, end);
        produced += u64::from(out_len);
        let skipped = io::copy(&mut r.take(u64::from(frame_len)), &mut io::sink())?;
        if skipped < u64::from(frame_len) {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    if produced != header.target_len || r.read(&mut [0u8; 1])? != 0 {
        return Err(invalid("the segments do not frame the announced length"));
    }
    Ok(())
}

/// Applies a whole patch in memory (tests and the packer's self-check).
pub fn apply(base: &[u8], patch: &[u8]) -> io::Result<Vec<u8>> {
    let mut r = patch;
    let header = PatchHeader::read(&mut r)?;
    check_base(&header, &mut &base[..])?;
    let mut out = Vec::new();
    PatchReader::new(header, &mut r, SequentialBase::new(base))?.read_to_end(&mut out)?;
    if !r.is_empty() {
        return Err(invalid("bytes after the last segment"));
    }
    Ok(out)
}

#[cfg(feature = "encode")]
mod encode;
#[cfg(feature = "encode")]
pub use encode::{encode, encode_to};

#[cfg(all(test, feature = "encode"))]
mod tests;
