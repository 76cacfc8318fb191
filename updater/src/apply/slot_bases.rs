//! The bases of image patches on A/B boards. `apply` writes the slot that is not running, so a
//! patch there is made against the image the router runs now: the same image of the booted slot
//! ([`crate::ab::booted_slot`]). A kernel partition is read as the raw writer filled it (bad
//! NAND blocks passed over), a root filesystem volume as UBI returns it. Everything is opened
//! read-only: the booted slot's root filesystem is mounted, and reading it is what the mount
//! does as well.

use std::fs::File;
use std::io::Read;

use liminix_boards::Board;
use liminix_bundle::ImageEntry;
use liminix_flash::{Flash, MtdFlash, Ubi, UbiDev};

use super::ab::{layout, role};
use super::bases::{device, volume_reader, FlashReader, ImageBases};
use super::error::ApplyError;
use crate::ab::{booted_slot, ImageRole, Slot, SlotLayout, Target};
use crate::error::Result;
use crate::root::DeviceRoot;

/// A target of the running slot, opened for reading.
pub enum BaseDev<'a> {
    Flash(&'a mut dyn Flash),
    /// Volume `name` of a UBI device.
    Volume {
        ubi: &'a mut dyn Ubi,
        name: String,
    },
    File(&'a mut File),
}

/// Opens the targets of the running slot (the real devices, or simulators in tests).
pub trait SlotDevices {
    /// `None`: the target holds nothing to patch (a UBI partition nobody attached).
    fn open(&mut self, target: &Target) -> Result<Option<BaseDev<'_>>>;
}

/// The running slot's images as the bases of image patches.
pub struct SlotBases<'a, D> {
    running: Running<'a>,
    devices: D,
}

/// The slot layout and the booted slot, read the first time a base is opened (a bundle
/// without patches does not need them here).
enum Running<'a> {
    Unread {
        root: &'a DeviceRoot,
        board: &'a Board,
    },
    Known(Box<SlotLayout>, Slot),
}

impl<'a> SlotBases<'a, RealSlotDevices<'a>> {
    /// The booted slot of the device below `root`.
    pub fn on_device(root: &'a DeviceRoot, board: &'a Board) -> Self {
        SlotBases {
            running: Running::Unread { root, board },
            devices: RealSlotDevices::new(root),
        }
    }
}

impl<D: SlotDevices> SlotBases<'_, D> {
    /// `booted` of `layout`, opened through `devices`.
    pub fn new(layout: SlotLayout, booted: Slot, devices: D) -> Self {
        SlotBases {
            running: Running::Known(Box::new(layout), booted),
            devices,
        }
    }

    /// The target of `image` in the running slot.
    fn target(&mut self, image: &ImageEntry) -> Result<(Target, Slot)> {
        if let Running::Unread { root, board } = self.running {
            let l = layout(root, board)?;
            let booted = booted_slot(root, &l).map_err(ApplyError::from)?;
            self.running = Running::Known(Box::new(l), booted);
        }
        let Running::Known(l, booted) = &self.running else {
            unreachable!("read above")
        };
        let slot = l.slot(*booted);
        let target = match role(&image.name)? {
            ImageRole::Kernel => Some(&slot.kernel),
            ImageRole::Rootfs => slot.rootfs.as_ref(),
        };
        let target = target.ok_or_else(|| ApplyError::NoBase {
            image: image.name.clone(),
            target: format!("slot {booted} (it has no {})", image.name),
        })?;
        Ok((target.clone(), *booted))
    }
}

impl<D: SlotDevices> ImageBases for SlotBases<'_, D> {
    fn place(&mut self, image: &ImageEntry) -> String {
        match self.target(image) {
            Ok((target, booted)) => describe(&target, booted),
            Err(_) => image.target.clone(),
        }
    }

    fn open(&mut self, image: &ImageEntry) -> Result<Box<dyn Read + '_>> {
        let (target, booted) = self.target(image)?;
        let words = describe(&target, booted);
        let no_base = || ApplyError::NoBase {
            image: image.name.clone(),
            target: words.clone(),
        };
        match self.devices.open(&target)?.ok_or_else(no_base)? {
            BaseDev::Flash(flash) => Ok(Box::new(FlashReader::new(flash))),
            BaseDev::File(file) => Ok(Box::new(file)),
            BaseDev::Volume { ubi, name } => volume_reader(ubi, &name, &words, &image.name, &words),
        }
    }
}

fn describe(t: &Target, slot: Slot) -> String {
    format!("the running slot {slot}'s {}", at(t))
}

/// Where a target is, in words.
fn at(t: &Target) -> String {
    match t {
        Target::Mtd { name } => format!("mtd:{name}"),
        Target::Block { path } => path.clone(),
        Target::UbiVolume { ubi, volume } => format!("ubi{ubi}:{volume}"),
        Target::UbiPartition {
            partition, volume, ..
        } => format!("mtd:{partition}:{volume}"),
    }
}

/// The real targets below a root, each opened read-only when asked for.
pub struct RealSlotDevices<'a> {
    root: &'a DeviceRoot,
    open: Option<Opened>,
}

enum Opened {
    Flash(MtdFlash),
    File(File),
    Ubi(UbiDev, String),
}

impl<'a> RealSlotDevices<'a> {
    pub fn new(root: &'a DeviceRoot) -> Self {
        RealSlotDevices { root, open: None }
    }

    fn opened(&self, t: &Target) -> Result<Option<Opened>, ApplyError> {
        let root = self.root;
        let words = at(t);
        Ok(Some(match t {
            Target::Mtd { name } => {
                let path = crate::ab::devices::device_path(root, &format!("mtd:{name}"))?;
                Opened::Flash(MtdFlash::open(&path, false).map_err(|e| device(&words, e))?)
            }
            Target::Block { path } => {
                Opened::File(File::open(root.join(path)).map_err(|e| device(path, e))?)
            }
            Target::UbiVolume { ubi, volume } => Opened::Ubi(
                UbiDev::open(root.dir(), *ubi).map_err(|e| device(&format!("ubi{ubi}"), e))?,
                volume.clone(),
            ),
            Target::UbiPartition {
                partition, volume, ..
            } => {
                let spec = format!("mtd:{partition}");
                let mtd = liminix_mtd::sysfs::find_by_name(root.dir(), partition)
                    .map_err(|e| device(&spec, e))?
                    .index;
                // The kernel attaches the UBI partition it booted from; unattached, the slot
                // was not booted from it and holds no base.
                let found = super::targets::attached_ubi(root, mtd);
                let Some(num) = found.map_err(|e| device(&spec, e))? else {
                    return Ok(None);
                };
                let dev = UbiDev::open(root.dir(), num).map_err(|e| device(&spec, e))?;
                Opened::Ubi(dev, volume.clone())
            }
        }))
    }
}

impl SlotDevices for RealSlotDevices<'_> {
    fn open(&mut self, target: &Target) -> Result<Option<BaseDev<'_>>> {
        // One target at a time: the previous one is closed first.
        self.open = None;
        let Some(opened) = self.opened(target)? else {
            return Ok(None);
        };
        let opened = self.open.insert(opened);
        Ok(Some(match opened {
            Opened::Flash(f) => BaseDev::Flash(f),
            Opened::File(f) => BaseDev::File(f),
            Opened::Ubi(dev, name) => BaseDev::Volume {
                ubi: dev,
                name: name.clone(),
            },
        }))
    }
}

#[cfg(test)]
#[path = "slot_bases_tests.rs"]
mod tests;
