//! Writing the inactive slot: size checks before any write, then "not bootable",
//! kernel, root filesystem, "try next" — the order that keeps every reset on a
//! complete slot.
//!
//! The code works on the liminix-flash traits, so the simulators with power cuts run
//! exactly what runs on the device ([`super::devices`] opens the real targets).

use liminix_flash::raw::check_fits;
use liminix_flash::ubi_update::{volume_matches, write_volume};
use liminix_flash::{write_raw, Flash, ImageSource, NoProgress, RawOptions, Ubi};
use serde::Serialize;

use super::flow::BootFlow;
use super::slot::{Slot, SlotLayout};
use super::AbError;

/// Where a slot's root filesystem goes.
pub enum RootfsDev<'a> {
    /// A raw partition (a UBI partition takes a ubinized image).
    Raw(&'a mut dyn Flash),
    /// An existing volume of an attached UBI device, replaced in place (it belongs to
    /// the inactive slot, so nothing has it mounted).
    Volume { ubi: &'a mut dyn Ubi, name: String },
}

/// The opened targets of one slot.
pub struct SlotDevs<'a> {
    pub kernel: &'a mut dyn Flash,
    pub rootfs: Option<RootfsDev<'a>>,
    /// Files (block devices) whose page cache must reach the disk before the slot is
    /// armed; MTD and UBI writes are synchronous and need nothing here.
    pub durable: Vec<std::fs::File>,
}

/// The verified images for one slot.
pub struct SlotImages<'a> {
    pub kernel: &'a dyn ImageSource,
    pub rootfs: Option<&'a dyn ImageSource>,
}

/// What an install wrote.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InstallReport {
    pub slot: Slot,
    pub kernel_bytes: u64,
    pub kernel_blocks_rewritten: u64,
    pub rootfs_bytes: u64,
}

fn too_large(what: &str, slot: Slot, len: u64, max: u64) -> AbError {
    AbError::Layout(format!(
        "{what} image of {len} bytes does not fit slot {slot} ({max} bytes)"
    ))
}

/// Refuses, before anything is written, images that do not fit the slot.
pub fn check_layout(
    slot: Slot,
    layout: &SlotLayout,
    devs: &mut SlotDevs,
    imgs: &SlotImages,
) -> Result<(), AbError> {
    let klen = imgs.kernel.len();
    if klen == 0 || klen > layout.kernel_max {
        return Err(too_large("kernel", slot, klen, layout.kernel_max));
    }
    check_fits(devs.kernel, klen).map_err(|e| AbError::Layout(format!("kernel: {e}")))?;
    match (&mut devs.rootfs, imgs.rootfs) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(AbError::Layout(format!(
            "slot {slot} has a root filesystem but the bundle carries no rootfs image"
        ))),
        (None, Some(_)) => Err(AbError::Layout(format!(
            "the bundle carries a rootfs image but slot {slot} has no root filesystem target"
        ))),
        (Some(dev), Some(img)) => {
            let len = img.len();
            if len > layout.rootfs_max {
                return Err(too_large("rootfs", slot, len, layout.rootfs_max));
            }
            match dev {
                RootfsDev::Raw(f) => {
                    check_fits(*f, len).map_err(|e| AbError::Layout(format!("rootfs: {e}")))
                }
                RootfsDev::Volume { ubi, name } => {
                    let vol = ubi
                        .volume_by_name(name)
                        .map_err(|e| AbError::io("list UBI volumes", e))?
                        .ok_or_else(|| AbError::Layout(format!("no UBI volume {name:?}")))?;
                    if len > vol.reserved_bytes {
                        return Err(too_large("rootfs", slot, len, vol.reserved_bytes));
                    }
                    Ok(())
                }
            }
        }
    }
}

fn write_rootfs(dev: &mut RootfsDev, img: &dyn ImageSource) -> Result<(), AbError> {
    match dev {
        RootfsDev::Raw(f) => {
            write_raw(*f, img, &RawOptions::default(), &mut NoProgress)
                .map_err(|e| AbError::Write(format!("rootfs: {e}")))?;
        }
        RootfsDev::Volume { ubi, name } => {
            let io = |e| AbError::io("UBI volume", e);
            let vol = ubi
                .volume_by_name(name)
                .map_err(io)?
                .ok_or_else(|| AbError::Layout(format!("no UBI volume {name:?}")))?;
            let sha = write_volume(*ubi, vol.id, img, &mut NoProgress)
                .map_err(|e| AbError::Write(format!("rootfs volume {name}: {e}")))?;
            if !volume_matches(*ubi, vol.id, img.len(), &sha).map_err(io)? {
                return Err(AbError::Verify(format!(
                    "UBI volume {name} does not read back as the image"
                )));
            }
        }
    }
    Ok(())
}

/// Installs `imgs` into `slot` and makes it the one to try at the next reset.
///
/// Order: sizes are checked (nothing written on failure); the flow makes sure no reset
/// boots `slot`; the kernel and the root filesystem are written and read back; only
/// then does the flow point the next reset at `slot`.
pub fn install_slot(
    flow: &mut dyn BootFlow,
    slot: Slot,
    layout: &SlotLayout,
    mut devs: SlotDevs,
    imgs: &SlotImages,
) -> Result<InstallReport, AbError> {
    check_layout(slot, layout, &mut devs, imgs)?;
    flow.prepare_write(slot)?;
    let k = write_raw(
        devs.kernel,
        imgs.kernel,
        &RawOptions::default(),
        &mut NoProgress,
    )
    .map_err(|e| AbError::Write(format!("kernel: {e}")))?;
    if let (Some(dev), Some(img)) = (devs.rootfs.as_mut(), imgs.rootfs) {
        write_rootfs(dev, img)?;
    }
    for f in &devs.durable {
        f.sync_all()
            .map_err(|e| AbError::io("flush slot to disk", e))?;
    }
    flow.try_next(slot)?;
    Ok(InstallReport {
        slot,
        kernel_bytes: k.image_len,
        kernel_blocks_rewritten: k.rewritten_blocks,
        rootfs_bytes: imgs.rootfs.map_or(0, |i| i.len()),
    })
}
