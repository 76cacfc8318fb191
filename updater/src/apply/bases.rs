//! The bases of image patches: what the device holds now where an image goes. `raw` and `ubi`
//! boards patch the target they are about to rewrite (the firmware partition, the UBI volume);
//! A/B boards are not patched yet (their base would be the running slot, not the one written).

use std::io::{self, Read};

use liminix_boards::{Board, Place};
use liminix_bundle::ImageEntry;
use liminix_flash::Flash;

use super::error::ApplyError;
use super::targets::Devices;
use crate::error::{AgentError, Result};

/// Opens the current contents of an image's target, front to back.
pub trait ImageBases {
    fn open(&mut self, image: &ImageEntry) -> Result<Box<dyn Read + '_>>;
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
                let end = flash.geometry().size;
                Ok(Box::new(FlashReader { flash, at: 0, end }))
            }
            Place::Ubi {
                partition, volume, ..
            } => {
                let (target, ubi) = self.devices.ubi(partition)?;
                let vol = ubi
                    .volume_by_name(&volume.name)
                    .map_err(|e| device(&target, e))?
                    .ok_or_else(|| ApplyError::NoBase {
                        image: image.name.clone(),
                        target: format!("{target}:{}", volume.name),
                    })?;
                Ok(ubi.open_read(vol.id).map_err(|e| device(&target, e))?)
            }
        }
    }
}

/// Boards whose strategy has no patch base.
pub struct NoBases;

impl ImageBases for NoBases {
    fn open(&mut self, image: &ImageEntry) -> Result<Box<dyn Read + '_>> {
        Err(ApplyError::NoBase {
            image: image.name.clone(),
            target: "an A/B slot".into(),
        }
        .into())
    }
}

fn device(target: &str, e: impl std::error::Error + Send + Sync + 'static) -> AgentError {
    ApplyError::Device {
        target: target.to_owned(),
        source: Box::new(e),
    }
    .into()
}

/// A raw partition read front to back.
struct FlashReader<'a> {
    flash: &'a mut dyn Flash,
    at: u64,
    end: u64,
}

impl Read for FlashReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.end - self.at).min(64 << 10) as usize;
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
/// as the bases of image patches (none on A/B boards): what `image-plan --keep` and
/// `apply --try` verify before the flash is written.
pub fn stage_on_device(
    root: &crate::root::DeviceRoot,
    board: &Board,
    input: &mut impl Read,
    m: &liminix_bundle::Manifest,
    dir: &std::path::Path,
) -> Result<Vec<crate::staging::images::StagedFile>> {
    if board.strategy.is_ab() {
        return crate::staging::images::stage_images(input, m, dir, &mut NoBases);
    }
    let mut devices = super::targets::RealDevices::new(root);
    let mut bases = DeviceBases {
        board,
        devices: &mut devices,
    };
    crate::staging::images::stage_images(input, m, dir, &mut bases)
}
