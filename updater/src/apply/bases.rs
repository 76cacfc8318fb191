//! The bases of image patches: what the device holds now where an image goes. `raw` and `ubi`
//! boards patch the target they are about to rewrite (the firmware partition, the UBI volume);
//! A/B boards patch the image of the slot that runs now ([`super::slot_bases`]), since the slot
//! written is the other one.

use std::io::{self, Read};

use liminix_boards::{Board, Place};
use liminix_bundle::ImageEntry;
use liminix_flash::{Flash, Ubi};

use super::error::ApplyError;
use super::targets::Devices;
use crate::error::Result;

/// Opens the current contents of an image's target, front to back.
pub trait ImageBases {
    fn open(&mut self, image: &ImageEntry) -> Result<Box<dyn Read + '_>>;
    /// Where `image`'s base is read, in words for errors.
    fn place(&mut self, image: &ImageEntry) -> String {
        image.target.clone()
    }
}

/// The targets of a `raw` or `ubi` board, through [`Devices`].
pub struct DeviceBases<'a> {
    pub board: &'a Board,
    pub devices: &'a mut dyn Devices,
}

impl ImageBases for DeviceBases<'_> {
    fn open(&mut self, image: &ImageEntry) -> Result<Box<dyn Read + '_>> {
        let to = self
            .board
            .resolve(&image.name, None)
            .map_err(ApplyError::from)?;
        match to.place {
            Place::Raw { partition, .. } => {
                let (_, flash) = self.devices.raw(partition)?;
                Ok(Box::new(FlashReader::new(flash)))
            }
            Place::Ubi {
                partition, volume, ..
            } => {
                let (target, ubi) = self.devices.ubi(partition)?;
                let place = format!("{target}:{}", volume.name);
                volume_reader(ubi, &volume.name, &target, &image.name, &place)
            }
        }
    }
}

/// Volume `name` of `ubi` (on `target`), read front to back; a missing volume holds no base for
/// `image` at `place`.
pub(super) fn volume_reader<'a>(
    ubi: &'a mut dyn Ubi,
    name: &str,
    target: &str,
    image: &str,
    place: &str,
) -> Result<Box<dyn Read + 'a>> {
    let vol = ubi
        .volume_by_name(name)
        .map_err(|e| device(target, e))?
        .ok_or_else(|| ApplyError::NoBase {
            image: image.to_owned(),
            target: place.to_owned(),
        })?;
    Ok(ubi.open_read(vol.id).map_err(|e| device(target, e))?)
}

pub(super) fn device(
    target: &str,
    e: impl std::error::Error + Send + Sync + 'static,
) -> ApplyError {
    ApplyError::Device {
        target: target.to_owned(),
        source: Box::new(e),
    }
}

/// A raw partition read front to back as the raw writer filled it: on NAND, bad erase blocks
/// are passed over (the writer, like nandwrite and flashcp, put the image in the good blocks
/// only), so what is read is the image, not the image with holes.
pub(super) struct FlashReader<'a> {
    flash: &'a mut dyn Flash,
    at: u64,
    end: u64,
    /// The erase block size where bad blocks are skipped (NAND), else 0.
    skip: u64,
}

impl<'a> FlashReader<'a> {
    pub(super) fn new(flash: &'a mut dyn Flash) -> Self {
        let g = flash.geometry();
        FlashReader {
            at: 0,
            end: g.size,
            skip: if g.is_nand {
                u64::from(g.erase_size)
            } else {
                0
            },
            flash,
        }
    }

    /// Moves past bad blocks when at the start of one; returns where the current block ends.
    fn good_block(&mut self) -> io::Result<u64> {
        if self.skip == 0 {
            return Ok(self.end);
        }
        while self.at < self.end && self.at.is_multiple_of(self.skip) {
            if !self.flash.is_bad(self.at).map_err(io::Error::other)? {
                break;
            }
            self.at = self.at.saturating_add(self.skip).min(self.end);
        }
        let block_end = (self.at / self.skip)
            .saturating_add(1)
            .saturating_mul(self.skip);
        Ok(block_end.min(self.end))
    }
}

impl Read for FlashReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let stop = self.good_block()?;
        let n = (buf.len() as u64).min(stop - self.at).min(64 << 10) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.flash
            .read(self.at, &mut buf[..n])
            .map_err(io::Error::other)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Stages the images of `m` from `input` into `dir` with the device's own targets below `root`
/// as the bases of image patches (the running slot's images on A/B boards): what
/// `image-plan --keep` and `apply --try` verify before the flash is written.
pub fn stage_on_device(
    root: &crate::root::DeviceRoot,
    board: &Board,
    input: &mut impl Read,
    m: &liminix_bundle::Manifest,
    dir: &std::path::Path,
) -> Result<Vec<crate::staging::images::StagedFile>> {
    if board.strategy.is_ab() {
        let mut bases = super::slot_bases::SlotBases::on_device(root, board);
        return crate::staging::images::stage_images(input, m, dir, &mut bases);
    }
    let mut devices = super::targets::RealDevices::new(root);
    let mut bases = DeviceBases {
        board,
        devices: &mut devices,
    };
    crate::staging::images::stage_images(input, m, dir, &mut bases)
}
