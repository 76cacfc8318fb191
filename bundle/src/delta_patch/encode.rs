//! The packer's side of [`super`]: libzstd, with the base window as a referenced prefix and a
//! window long enough to reach all of it (what `zstd --patch-from` does for a whole file).

use sha2::{Digest, Sha256};
use zstd::zstd_safe::{CCtx, CParameter};

use super::{PatchHeader, MAX_REF, MAX_SEG, MAX_WINDOW_LOG};

/// Why a patch could not be made.
#[derive(Debug, thiserror::Error)]
#[error("zstd could not compress a patch segment: {0}")]
pub struct EncodeError(&'static str);

/// The patch of `target` against `base`, frames at zstd `level`.
pub fn encode(base: &[u8], target: &[u8], level: i32) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_to(base, target, level, &mut out)?;
    Ok(out)
}

/// [`encode`], appending to `out`.
pub fn encode_to(
    base: &[u8],
    target: &[u8],
    level: i32,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.extend_from_slice(
        &PatchHeader {
            base_len: base.len() as u64,
            base_sha256: Sha256::digest(base).into(),
            target_len: target.len() as u64,
        }
        .to_bytes(),
    );
    for (t0, seg) in (0..)
        .step_by(MAX_SEG as usize)
        .zip(target.chunks(MAX_SEG as usize))
    {
        let (off, len) = window_for(base.len(), target.len(), t0, seg.len());
        let frame = compress(&base[off..off + len], seg, level)?;
        out.extend_from_slice(&(off as u64).to_le_bytes());
        for n in [len, seg.len(), frame.len()] {
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        out.extend_from_slice(&frame);
    }
    Ok(())
}

/// The base window for the segment at `t0`: the whole base when it fits, else a window of
/// [`MAX_REF`] around the segment's proportional position (content mostly keeps its order
/// between builds, and moves by no more than what was inserted before it). The windows of
/// successive segments move forward only.
fn window_for(base_len: usize, target_len: usize, t0: usize, seg_len: usize) -> (usize, usize) {
    let max = MAX_REF as usize;
    if base_len <= max {
        return (0, base_len);
    }
    let centre = (t0 + seg_len / 2) as u128 * base_len as u128 / target_len.max(1) as u128;
    let off = (centre as usize)
        .saturating_sub(max / 2)
        .min(base_len - max);
    (off, max)
}

fn zstd_err(code: usize) -> EncodeError {
    EncodeError(zstd::zstd_safe::get_error_name(code))
}

fn compress(window: &[u8], seg: &[u8], level: i32) -> Result<Vec<u8>, EncodeError> {
    let span = (window.len() + seg.len()).max(1 << 10);
    let log = (usize::BITS - (span - 1).leading_zeros()).min(MAX_WINDOW_LOG);
    let mut cctx = CCtx::create();
    let set = |c: &mut CCtx, p| c.set_parameter(p).map(|_| ());
    for p in [
        CParameter::CompressionLevel(level),
        CParameter::WindowLog(log),
        CParameter::EnableLongDistanceMatching(true),
        CParameter::ContentSizeFlag(true),
        CParameter::ChecksumFlag(false),
        CParameter::DictIdFlag(false),
    ] {
        set(&mut cctx, p).map_err(zstd_err)?;
    }
    cctx.ref_prefix(window).map_err(zstd_err)?;
    let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(seg.len()));
    cctx.compress2(&mut frame, seg).map_err(zstd_err)?;
    Ok(frame)
}
