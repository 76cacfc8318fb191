//! The UBI device a slot's root filesystem volume lives on.
//!
//! The kernel attaches only the booted slot's UBI partition (`ubi.mtd=`), so the inactive
//! slot's is normally not attached when `apply` runs. Opening it then attaches it
//! (`UBI_IOCATT`; an erased partition is formatted by the kernel, which is harmless for a
//! slot that holds no root filesystem) and closing it detaches it again, so the running
//! system is left with the devices it had. A partition holding other data (the vendor
//! firmware) is refused before the attach, with what to do: the agent does not erase it
//! unasked. A partition that is already attached is used
//! as it is, unless the slot's volume on it is mounted: then it is somebody's root, not
//! the inactive slot's. Nothing here writes a volume; see docs/ab.md.

use std::path::PathBuf;

use liminix_flash::mounts::{volume_mount_point, VolumeRef};
use liminix_flash::{Flash, FlashError, MtdFlash, Ubi, UbiDev};
use serde::Serialize;

use super::{AbError, AttachError, ConfigError, RefusedError};
use crate::root::DeviceRoot;

/// A UBI device attached for an install.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UbiAttach {
    /// The MTD partition (sysfs name) and its number.
    pub partition: String,
    pub mtd: u32,
    /// The UBI device number the kernel gave it.
    pub ubi: u32,
    /// Why detaching it after the install failed (it then stays attached until reboot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detach_error: Option<String>,
}

/// An open UBI device of the inactive slot; detaches on close (or drop) if opening
/// attached it.
pub struct SlotUbi {
    root: PathBuf,
    dev: Option<UbiDev>,
    ours: Option<UbiAttach>,
}

impl SlotUbi {
    /// The attached device `ubiN`, refused if the slot's `volume` on it is mounted.
    pub fn attached(root: &DeviceRoot, num: u32, volume: &str) -> Result<Self, AbError> {
        refuse_if_mounted(root, num, volume)?;
        Ok(SlotUbi {
            root: root.dir().to_path_buf(),
            dev: Some(open(root, num)?),
            ours: None,
        })
    }

    /// The UBI device on MTD partition `partition` (sysfs name), attached if no device
    /// is.
    pub fn on_partition(root: &DeviceRoot, partition: &str, volume: &str) -> Result<Self, AbError> {
        let mtd = liminix_mtd::sysfs::find_by_name(root.dir(), partition)
            .map_err(|source| ConfigError::Partition {
                spec: format!("mtd:{partition}"),
                source,
            })?
            .index;
        let found = crate::apply::targets::attached_ubi(root, mtd)
            .map_err(|e| AbError::io("list UBI devices", e))?;
        match found {
            Some(num) => Self::attached(root, num, volume),
            None => Self::attach(root, partition, mtd),
        }
    }

    fn attach(root: &DeviceRoot, partition: &str, mtd: u32) -> Result<Self, AbError> {
        refuse_foreign_data(root, partition, mtd)?;
        let num =
            liminix_ubi::attach(root.dir(), mtd, 0).map_err(|e| attach_error(partition, mtd, e))?;
        let mut me = SlotUbi {
            root: root.dir().to_path_buf(),
            dev: None,
            ours: Some(UbiAttach {
                partition: partition.to_owned(),
                mtd,
                ubi: num,
                detach_error: None,
            }),
        };
        // On failure `me` is dropped, which detaches again.
        me.dev = Some(open(root, num)?);
        Ok(me)
    }

    /// The device.
    pub fn ubi(&mut self) -> &mut dyn Ubi {
        self.dev.as_mut().expect("open until closed")
    }

    /// Closes the device and detaches it if opening attached it; returns that attach.
    pub fn close(mut self) -> Option<UbiAttach> {
        self.dev = None;
        let mut a = self.ours.take()?;
        if let Err(e) = liminix_ubi::detach(&self.root, a.ubi) {
            a.detach_error = Some(e.to_string());
        }
        Some(a)
    }
}

impl Drop for SlotUbi {
    fn drop(&mut self) {
        // An install that failed: leave the devices as they were, as far as possible.
        self.dev = None;
        if let Some(a) = self.ours.take() {
            let _ = liminix_ubi::detach(&self.root, a.ubi);
        }
    }
}

fn open(root: &DeviceRoot, num: u32) -> Result<UbiDev, AbError> {
    UbiDev::open(root.dir(), num).map_err(|e| AbError::io("open UBI device", e))
}

pub(crate) fn attach_error(partition: &str, mtd: u32, e: liminix_ubi::UbiError) -> AbError {
    let reason = match e {
        liminix_ubi::UbiError::Open { .. } => AttachError::NoUbi(e),
        source => AttachError::Refused { mtd, source },
    };
    AbError::Attach {
        partition: partition.to_owned(),
        mtd,
        reason,
    }
}

/// Start of every UBI erase block: the erase-counter header's magic.
const EC_MAGIC: &[u8] = b"UBI#";
/// Bytes read from the start of each erase block (the erase-counter header).
const EC_HEADER: usize = 64;
/// Foreign blocks tolerated: an erase cut by a power failure leaves a block of noise,
/// which the kernel erases when it attaches. (The kernel attaches a partition whose
/// foreign blocks sit next to a UBI volume table and erases them; more than a couple
/// are somebody's data, which the agent does not erase unasked.)
const TORN_ERASES: usize = 2;

/// Erase blocks (by number) that start with neither erased flash nor a UBI header.
pub fn foreign_blocks(flash: &mut dyn Flash) -> Result<Vec<u64>, FlashError> {
    let g = flash.geometry();
    let eb = u64::from(g.erase_size);
    let mut head = [0u8; EC_HEADER];
    let mut out = Vec::new();
    for block in 0..g.size / eb {
        if flash.is_bad(block * eb)? {
            continue;
        }
        flash.read(block * eb, &mut head)?;
        if !head.starts_with(EC_MAGIC) && head.iter().any(|b| *b != 0xFF) {
            out.push(block);
        }
    }
    Ok(out)
}

/// Refuses to attach a partition that holds other data than UBI (read only).
fn refuse_foreign_data(root: &DeviceRoot, partition: &str, mtd: u32) -> Result<(), AbError> {
    let path = root.mtd_device(mtd);
    let mut f = MtdFlash::open(&path, false).map_err(|e| AbError::io("open UBI partition", e))?;
    let foreign = foreign_blocks(&mut f).map_err(|e| AbError::io("read UBI partition", e))?;
    if foreign.len() <= TORN_ERASES {
        return Ok(());
    }
    Err(AbError::Attach {
        partition: partition.to_owned(),
        mtd,
        reason: AttachError::Foreign {
            mtd,
            count: foreign.len(),
            first: foreign[0],
        },
    })
}

fn refuse_if_mounted(root: &DeviceRoot, num: u32, volume: &str) -> Result<(), AbError> {
    let vols = liminix_ubi::sysfs::volumes(root.dir(), num)
        .map_err(|e| AbError::io("list UBI volumes", e))?;
    let Some(v) = vols.iter().find(|v| v.name == volume) else {
        return Ok(());
    };
    let r = VolumeRef {
        ubi_num: num,
        vol_id: v.id,
        name: &v.name,
    };
    let at =
        volume_mount_point(root.dir(), r).map_err(|e| AbError::io("read the mount table", e))?;
    match at {
        Some(at) => Err(RefusedError::Mounted {
            volume: volume.to_owned(),
            ubi: num,
            at: at.to_string(),
        }
        .into()),
        None => Ok(()),
    }
}
