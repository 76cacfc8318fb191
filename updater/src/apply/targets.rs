//! Opening the board's targets. The agent opens the real `/dev/mtdN` and `/dev/ubiN` below
//! `--root`, found by partition name in sysfs; tests hand in liminix-flash's simulators through
//! the same [`Devices`] trait, so they run the code path the device runs.

use std::collections::BTreeMap;

use liminix_boards::Partition;
use liminix_flash::in_use::{partition_in_use, InUse};
use liminix_flash::mounts::{volume_mount_point, VolumeRef};
use liminix_flash::{Flash, MtdFlash, Progress, Ubi, UbiDev, UbiVolume};

use super::error::ApplyError;
use crate::error::Result;
use crate::flashops::journal_dir::JournalLocation;
use crate::flashops::FlashOpError;
use crate::root::DeviceRoot;

/// What `apply` writes to.
pub trait Devices {
    /// The raw partition `p` and its journal key.
    fn raw(&mut self, p: &Partition) -> Result<(String, &mut dyn Flash), ApplyError>;
    /// The UBI device attached to partition `p` and its journal target (`ubiN`).
    fn ubi(&mut self, p: &Partition) -> Result<(String, &mut dyn Ubi), ApplyError>;
    /// Settles earlier, interrupted transactions on `key` before it is written again.
    fn recover(
        &mut self,
        _loc: &JournalLocation,
        _key: &str,
        _progress: &mut dyn Progress,
    ) -> Result<()> {
        Ok(())
    }
    /// The mount that uses raw partition `p` or one sharing its bytes, if any (its write is
    /// then refused).
    fn raw_in_use(&mut self, _p: &Partition) -> Result<Option<InUse>> {
        Ok(None)
    }
    /// Where the volume is mounted, if it is (an in-place update is then refused).
    fn mount_point(&mut self, _ubi_target: &str, _vol: &UbiVolume) -> Result<Option<String>> {
        Ok(None)
    }
}

fn device_err<E: std::error::Error + Send + Sync + 'static>(
    target: impl Into<String>,
) -> impl FnOnce(E) -> ApplyError {
    let target = target.into();
    move |e| ApplyError::Device {
        target,
        source: Box::new(e),
    }
}

/// The MTD index of the partition the board calls `p`.
pub fn mtd_index(root: &DeviceRoot, p: &Partition) -> Result<u32, ApplyError> {
    liminix_mtd::sysfs::find_by_name(root.dir(), p.sysfs_name())
        .map(|e| e.index)
        .map_err(device_err(format!("mtd:{}", p.name)))
}

/// The number of the UBI device attached to MTD device `mtd`, if one is.
pub fn attached_ubi(root: &DeviceRoot, mtd: u32) -> Result<Option<u32>, liminix_ubi::UbiError> {
    for num in liminix_ubi::sysfs::devices(root.dir())? {
        let info = liminix_ubi::sysfs::device_info(root.dir(), num);
        if info.is_ok_and(|i| i.mtd_num == mtd) {
            return Ok(Some(num));
        }
    }
    Ok(None)
}

/// The number of the UBI device attached to partition `p` (which must be attached: the
/// `ubi` strategy updates the running system's own device).
pub fn ubi_number(root: &DeviceRoot, p: &Partition) -> Result<u32, ApplyError> {
    let mtd = mtd_index(root, p)?;
    attached_ubi(root, mtd)
        .map_err(device_err(format!("UBI on mtd:{}", p.name)))?
        .ok_or_else(|| ApplyError::NotAttached {
            partition: p.name.clone(),
            mtd,
        })
}

/// Real devices below a root directory, opened once each.
pub struct RealDevices<'a> {
    root: &'a DeviceRoot,
    raw: BTreeMap<String, MtdFlash>,
    ubi: BTreeMap<String, (u32, UbiDev)>,
}

impl<'a> RealDevices<'a> {
    pub fn new(root: &'a DeviceRoot) -> Self {
        RealDevices {
            root,
            raw: BTreeMap::new(),
            ubi: BTreeMap::new(),
        }
    }
}

impl Devices for RealDevices<'_> {
    fn raw(&mut self, p: &Partition) -> Result<(String, &mut dyn Flash), ApplyError> {
        let index = mtd_index(self.root, p)?;
        let path = self.root.mtd_device(index);
        let key = crate::flashops::raw::target_key(self.root.dir(), &path);
        if !self.raw.contains_key(&key) {
            let dev =
                MtdFlash::open(&path, true).map_err(device_err(path.display().to_string()))?;
            self.raw.insert(key.clone(), dev);
        }
        let dev = self.raw.get_mut(&key).expect("inserted");
        Ok((key, dev))
    }

    fn ubi(&mut self, p: &Partition) -> Result<(String, &mut dyn Ubi), ApplyError> {
        let num = ubi_number(self.root, p)?;
        let target = format!("ubi{num}");
        if !self.ubi.contains_key(&target) {
            let dev = UbiDev::open(self.root.dir(), num).map_err(device_err(target.clone()))?;
            self.ubi.insert(target.clone(), (num, dev));
        }
        let (_, dev) = self.ubi.get_mut(&target).expect("inserted");
        Ok((target, dev))
    }

    fn recover(
        &mut self,
        loc: &JournalLocation,
        key: &str,
        progress: &mut dyn Progress,
    ) -> Result<()> {
        // Recovery opens the devices itself; ours must not hold a UBI volume open meanwhile.
        crate::flashops::raw::recover_then_claim(self.root, loc, key, progress)?;
        Ok(())
    }

    fn raw_in_use(&mut self, p: &Partition) -> Result<Option<InUse>> {
        let index = mtd_index(self.root, p)?;
        let used = partition_in_use(self.root.dir(), index).map_err(FlashOpError::from)?;
        Ok(used)
    }

    fn mount_point(&mut self, ubi_target: &str, vol: &UbiVolume) -> Result<Option<String>> {
        let num = self.ubi.get(ubi_target).map_or(u32::MAX, |(n, _)| *n);
        let r = VolumeRef {
            ubi_num: num,
            vol_id: vol.id,
            name: &vol.name,
        };
        volume_mount_point(self.root.dir(), r).map_err(crate::error::AgentError::io(
            "reading mounts under",
            self.root.dir(),
        ))
    }
}
