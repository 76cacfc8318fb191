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
    let target = bases.place(image);
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

/// Checks, from the signed manifest alone, that the device holds the base of `image`'s patch
/// (its target's first `size` bytes hash as the manifest says): what `image-plan` asks before
/// anything is sent, so that a sender can pick the whole image instead. Images without a base
/// pass.
pub fn check_manifest_base(image: &ImageEntry, bases: &mut dyn ImageBases) -> Result<()> {
    let Some(base) = &image.base else {
        return Ok(());
    };
    let target = bases.place(image);
    let mismatch = |source| ApplyError::BaseMismatch {
        image: image.name.clone(),
        target: target.clone(),
        source,
    };
    let mut hash = HashSink::default();
    let copied =
        std::io::copy(&mut bases.open(image)?.take(base.size), &mut hash).map_err(&mismatch)?;
    let sha256 = hex::encode(sha2::Digest::finalize(hash.0));
    if copied != base.size || sha256 != base.sha256 {
        let what = format!(
            "its first {} bytes hash {sha256}, not the base's {}",
            base.size, base.sha256
        );
        return Err(mismatch(std::io::Error::other(what)).into());
    }
    Ok(())
}

/// sha256 of what is written to it.
#[derive(Default)]
pub(super) struct HashSink(pub(super) sha2::Sha256);

impl std::io::Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every image patch of `m` has its base on the device: else refused as `apply` would refuse it
/// (`base_mismatch`), from the manifest alone.
pub fn check_bases(
    root: &crate::root::DeviceRoot,
    board: &liminix_boards::Board,
    m: &liminix_bundle::Manifest,
    devices: &mut dyn super::targets::Devices,
) -> Result<()> {
    let mut device_bases = super::bases::DeviceBases { board, devices };
    let mut slot_bases = super::slot_bases::SlotBases::on_device(root, board);
    let bases: &mut dyn super::bases::ImageBases = match board.strategy.is_ab() {
        true => &mut slot_bases,
        false => &mut device_bases,
    };
    for image in m.images.iter().filter(|i| i.base.is_some()) {
        check_manifest_base(image, bases)?;
    }
    Ok(())
}
