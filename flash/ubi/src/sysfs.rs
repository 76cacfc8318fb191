//! UBI devices and volumes as `/sys/class/ubi` describes them, under an
//! injectable root directory.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{UbiError, VolumeKind};

/// A UBI device's geometry and usage (`/sys/class/ubi/ubiN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbiDeviceInfo {
    pub ubi_num: u32,
    pub mtd_num: u32,
    /// Free logical erase blocks.
    pub avail_ebs: u32,
    /// LEB size in bytes.
    pub eb_size: u32,
    pub total_ebs: u32,
    pub min_io: u32,
    pub max_vol_count: u32,
    pub volumes_count: u32,
    pub bad_peb_count: u32,
}

/// One volume (`/sys/class/ubi/ubiN/ubiN_M`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub id: u32,
    pub name: String,
    pub kind: VolumeKind,
    pub reserved_ebs: u32,
    /// Usable bytes per LEB for this volume (LEB size minus alignment padding).
    pub usable_eb_size: u32,
    /// Static volumes: bytes of data; dynamic volumes: the whole reserved size.
    pub data_bytes: u64,
    /// Static volume failed its CRC check.
    pub corrupted: bool,
    /// An update was started and not finished; the volume is unusable until redone.
    pub upd_marker: bool,
}

pub(crate) fn device_dir(root: &Path, ubi_num: u32) -> PathBuf {
    root.join(format!("sys/class/ubi/ubi{ubi_num}"))
}

fn read_attr(dir: &Path, attr: &str) -> Result<String, UbiError> {
    let path = dir.join(attr);
    let raw = fs::read_to_string(&path).map_err(|source| UbiError::Sysfs { path, source })?;
    Ok(raw.trim().to_string())
}

fn read_num<T: std::str::FromStr>(dir: &Path, attr: &str) -> Result<T, UbiError> {
    let value = read_attr(dir, attr)?;
    value.parse().map_err(|_| UbiError::SysfsParse {
        path: dir.join(attr),
        value,
    })
}

/// Reads `/sys/class/ubi/ubiN`.
pub fn device_info(root: &Path, ubi_num: u32) -> Result<UbiDeviceInfo, UbiError> {
    let d = device_dir(root, ubi_num);
    if !d.is_dir() {
        return Err(UbiError::NotFound(format!("ubi{ubi_num}")));
    }
    Ok(UbiDeviceInfo {
        ubi_num,
        mtd_num: read_num(&d, "mtd_num")?,
        avail_ebs: read_num(&d, "avail_eraseblocks")?,
        eb_size: read_num(&d, "eraseblock_size")?,
        total_ebs: read_num(&d, "total_eraseblocks")?,
        min_io: read_num(&d, "min_io_size")?,
        max_vol_count: read_num(&d, "max_vol_count")?,
        volumes_count: read_num(&d, "volumes_count")?,
        bad_peb_count: read_num(&d, "bad_peb_count")?,
    })
}

/// Reads one volume directory.
pub fn volume_info(root: &Path, ubi_num: u32, id: u32) -> Result<VolumeInfo, UbiError> {
    let d = device_dir(root, ubi_num).join(format!("ubi{ubi_num}_{id}"));
    if !d.is_dir() {
        return Err(UbiError::NotFound(format!("ubi{ubi_num}_{id}")));
    }
    let kind = match read_attr(&d, "type")?.as_str() {
        "dynamic" => VolumeKind::Dynamic,
        "static" => VolumeKind::Static,
        other => {
            return Err(UbiError::SysfsParse {
                path: d.join("type"),
                value: other.into(),
            })
        }
    };
    Ok(VolumeInfo {
        id,
        name: read_attr(&d, "name")?,
        kind,
        reserved_ebs: read_num(&d, "reserved_ebs")?,
        usable_eb_size: read_num(&d, "usable_eb_size")?,
        data_bytes: read_num(&d, "data_bytes")?,
        corrupted: read_num::<u8>(&d, "corrupted")? != 0,
        upd_marker: read_num::<u8>(&d, "upd_marker")? != 0,
    })
}

/// All volumes of a device, by id.
pub fn volumes(root: &Path, ubi_num: u32) -> Result<Vec<VolumeInfo>, UbiError> {
    let d = device_dir(root, ubi_num);
    let rd = fs::read_dir(&d).map_err(|source| UbiError::Sysfs {
        path: d.clone(),
        source,
    })?;
    let prefix = format!("ubi{ubi_num}_");
    let mut ids: Vec<u32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix(&prefix)?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.into_iter()
        .map(|id| volume_info(root, ubi_num, id))
        .collect()
}

/// Numbers of all attached UBI devices.
pub fn devices(root: &Path) -> Result<Vec<u32>, UbiError> {
    let d = root.join("sys/class/ubi");
    let rd = match fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(UbiError::Sysfs { path: d, source }),
    };
    let mut nums: Vec<u32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("ubi")?.parse().ok())
        .collect();
    nums.sort_unstable();
    Ok(nums)
}
