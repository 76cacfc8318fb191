//! Decoding an image patch (encoding 4): the patch must be the one the signed manifest
//! describes (its base's sha256 and size, the image's size), and the device must hold that
//! base: its target's first `size` bytes are hashed before a segment is decoded. A device that
//! holds anything else refuses with [`ApplyError::BaseMismatch`] (exit 10) before a flash
//! write, so the sender resends the whole image. The decoded image is then checked against the
//! manifest's sha256 like any other.

use std::io::Read;

use liminix_bundle::delta_patch::{check_base, PatchHeader, PatchReader, SequentialBase};
use liminix_bundle::ImageEntry;

use super::bases::ImageBases;
use super::error::ApplyError;
use crate::error::{PayloadError, Result};

/// The reader of the patched image, once the device's contents proved to be its base.
pub fn reader<'b, R: Read>(
    image: &ImageEntry,
    mut patch: R,
    bases: &'b mut dyn ImageBases,
) -> Result<PatchReader<R, SequentialBase<Box<dyn Read + 'b>>>> {
    let bad = |source: std::io::Error| ApplyError::Payload {
        image: image.name.clone(),
        source: Box::new(PayloadError::Delta(source)),
    };
    let header = PatchHeader::read(&mut patch).map_err(bad)?;
    let base = image
        .base
        .as_ref()
        .ok_or_else(|| bad(std::io::Error::other("no base in the manifest")))?;
    if header.base_len != base.size
        || hex::encode(header.base_sha256) != base.sha256
        || header.target_len != image.size
    {
        let e = "the patch's header differs from the signed manifest";
        return Err(bad(std::io::Error::other(e)).into());
    }
    let target = image.target.clone();
    let mismatch = |source| ApplyError::BaseMismatch {
        image: image.name.clone(),
        target: target.clone(),
        source,
    };
    check_base(&header, &mut bases.open(image)?.take(base.size)).map_err(mismatch)?;
    let reread = bases.open(image)?.take(base.size);
    let reread: Box<dyn Read + 'b> = Box::new(reread);
    Ok(PatchReader::new(header, patch, SequentialBase::new(reread)).map_err(bad)?)
}
