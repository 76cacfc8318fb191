//! Linux UBI from user space: attach/detach MTD devices, create, resize,
//! rename and remove volumes, and replace volume contents atomically with
//! UBI_IOCVOLUP.
//!
//! Sits on top of `liminix-mtd` (whose `ioc` module supplies the per-arch ioctl
//! encoding) and below the updater's flash strategies. Raw ioctls are confined
//! to the private `sys` module; device information comes from sysfs, read under
//! an injectable root directory like every path this crate builds.
//!
//! [`image`] is the one part that touches no device: it writes raw UBI images
//! (as `ubinize` does) on the build host.

mod error;
pub mod image;
#[allow(unsafe_code)]
mod sys;
pub mod sysfs;
mod update;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

pub use error::UbiError;
pub use sysfs::{UbiDeviceInfo, VolumeInfo};
pub use update::{open_volume_read, start_update, write_volume, VolumeWriter};

/// Dynamic volumes are read-write block stores (UBIFS); static volumes hold one
/// CRC-checked blob (kernel, squashfs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeKind {
    Dynamic,
    Static,
}

pub(crate) fn volume_node(root: &Path, ubi_num: u32, vol_id: u32) -> PathBuf {
    root.join(format!("dev/ubi{ubi_num}_{vol_id}"))
}

fn open_node(path: &Path) -> Result<OwnedFd, UbiError> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|source| {
        UbiError::Open {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Attaches MTD device `mtd_num`; `vid_hdr_offset` 0 lets the kernel choose.
/// Returns the new UBI device number.
pub fn attach(root: &Path, mtd_num: u32, vid_hdr_offset: u32) -> Result<u32, UbiError> {
    let path = root.join("dev/ubi_ctrl");
    let ctrl = open_node(&path)?;
    let mut req = sys::AttachReq {
        ubi_num: -1,
        mtd_num: mtd_num as i32,
        vid_hdr_offset: vid_hdr_offset as i32,
        ..Default::default()
    };
    sys::attach(&ctrl, &mut req).map_err(|source| UbiError::Ioctl {
        op: "UBI_IOCATT",
        path,
        what: format!("mtd{mtd_num}"),
        source,
    })
}

/// Detaches UBI device `ubi_num` (all its volumes must be closed).
pub fn detach(root: &Path, ubi_num: u32) -> Result<(), UbiError> {
    let path = root.join("dev/ubi_ctrl");
    let ctrl = open_node(&path)?;
    sys::detach(&ctrl, ubi_num).map_err(|source| UbiError::Ioctl {
        op: "UBI_IOCDET",
        path,
        what: format!("ubi{ubi_num}"),
        source,
    })
}

fn check_name(name: &str) -> Result<(), UbiError> {
    let why = if name.is_empty() {
        "empty"
    } else if name.len() > sys::MAX_NAME {
        "longer than 127 bytes"
    } else if name.contains('\0') {
        "contains NUL"
    } else {
        return Ok(());
    };
    Err(UbiError::InvalidName {
        name: name.to_string(),
        why,
    })
}

/// An open `/dev/ubiN`.
#[derive(Debug)]
pub struct UbiDevice {
    root: PathBuf,
    num: u32,
    path: PathBuf,
    fd: OwnedFd,
}

impl UbiDevice {
    /// Opens `ROOT/dev/ubiN`.
    pub fn open(root: &Path, ubi_num: u32) -> Result<Self, UbiError> {
        let path = root.join(format!("dev/ubi{ubi_num}"));
        let fd = open_node(&path)?;
        Ok(Self {
            root: root.to_path_buf(),
            num: ubi_num,
            path,
            fd,
        })
    }

    /// The UBI device number.
    pub fn number(&self) -> u32 {
        self.num
    }

    /// Geometry and free space from sysfs.
    pub fn info(&self) -> Result<UbiDeviceInfo, UbiError> {
        sysfs::device_info(&self.root, self.num)
    }

    /// All volumes, by id.
    pub fn volumes(&self) -> Result<Vec<VolumeInfo>, UbiError> {
        sysfs::volumes(&self.root, self.num)
    }

    /// The volume called `name`, if any.
    pub fn volume_by_name(&self, name: &str) -> Result<Option<VolumeInfo>, UbiError> {
        Ok(self.volumes()?.into_iter().find(|v| v.name == name))
    }

    /// Creates a volume of at least `bytes` (rounded up to whole LEBs by the
    /// kernel); `id` None lets the kernel pick. Returns the volume id.
    pub fn make_volume(
        &self,
        name: &str,
        bytes: u64,
        kind: VolumeKind,
        id: Option<u32>,
    ) -> Result<u32, UbiError> {
        check_name(name)?;
        let mut req = sys::MkvolReq {
            vol_id: id.map_or(-1, |i| i as i32),
            alignment: 1,
            bytes: bytes as i64,
            vol_type: match kind {
                VolumeKind::Dynamic => sys::VOL_DYNAMIC,
                VolumeKind::Static => sys::VOL_STATIC,
            },
            flags: 0,
            name_len: name.len() as i16,
            padding2: [0; 4],
            name: sys::name_buf(name),
        };
        sys::mkvol(&self.fd, &mut req)
            .map_err(|e| self.err("UBI_IOCMKVOL", format!("{name:?}, {bytes} bytes"), e))
    }

    /// Removes a volume (it must not be open).
    pub fn remove_volume(&self, id: u32) -> Result<(), UbiError> {
        sys::rmvol(&self.fd, id).map_err(|e| self.err("UBI_IOCRMVOL", format!("volume {id}"), e))
    }

    /// Changes a volume's reserved size (it must not be open).
    pub fn resize_volume(&self, id: u32, bytes: u64) -> Result<(), UbiError> {
        sys::rsvol(&self.fd, id, bytes)
            .map_err(|e| self.err("UBI_IOCRSVOL", format!("volume {id} to {bytes} bytes"), e))
    }

    /// One UBI_IOCRNVOL: all renames happen atomically (up to the kernel's limit of 32 entries).
    ///
    /// Kernel semantics: a volume whose current name is taken by a rename and
    /// that is not itself renamed in the same request is deleted.
    pub fn rename_volumes(&self, renames: &[(u32, &str)]) -> Result<(), UbiError> {
        if renames.len() > sys::MAX_RENAMES {
            return Err(UbiError::TooManyRenames(renames.len()));
        }
        let empty = sys::RnvolEntry {
            vol_id: 0,
            name_len: 0,
            padding2: [0; 2],
            name: [0; 128],
        };
        let mut req = sys::RnvolReq {
            count: renames.len() as i32,
            padding1: [0; 12],
            ents: [empty; sys::MAX_RENAMES],
        };
        for (slot, &(id, name)) in req.ents.iter_mut().zip(renames) {
            check_name(name)?;
            *slot = sys::RnvolEntry {
                vol_id: id as i32,
                name_len: name.len() as i16,
                padding2: [0; 2],
                name: sys::name_buf(name),
            };
        }
        let what = renames
            .iter()
            .map(|(id, n)| format!("{id}→{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        sys::rnvol(&self.fd, &mut req).map_err(|e| self.err("UBI_IOCRNVOL", what, e))
    }

    /// `ROOT/dev/ubiN_M`.
    pub fn volume_device_path(&self, id: u32) -> PathBuf {
        volume_node(&self.root, self.num, id)
    }

    fn err(&self, op: &'static str, what: String, source: rustix::io::Errno) -> UbiError {
        UbiError::Ioctl {
            op,
            path: self.path.clone(),
            what,
            source,
        }
    }
}

/// Parses "ubi0:rootfs", "ubi:rootfs" (any device), "ubi0_3", "/dev/ubi0_3" →
/// (ubi_num, vol_id) using sysfs under root.
pub fn resolve_volume(root: &Path, spec: &str) -> Result<(u32, u32), UbiError> {
    let not_found = || UbiError::NotFound(spec.to_string());
    let base = spec.strip_prefix("/dev/").unwrap_or(spec);
    let rest = base.strip_prefix("ubi").ok_or_else(not_found)?;
    if let Some((dev, name)) = rest.split_once(':') {
        let nums = if dev.is_empty() {
            sysfs::devices(root)?
        } else {
            vec![dev.parse().map_err(|_| not_found())?]
        };
        for num in nums {
            if let Some(v) = sysfs::volumes(root, num)?
                .into_iter()
                .find(|v| v.name == name)
            {
                return Ok((num, v.id));
            }
        }
        return Err(not_found());
    }
    let (dev, vol) = rest.split_once('_').ok_or_else(not_found)?;
    let (num, id) = (
        dev.parse().map_err(|_| not_found())?,
        vol.parse().map_err(|_| not_found())?,
    );
    sysfs::volume_info(root, num, id)?;
    Ok((num, id))
}

#[cfg(test)]
mod tests;
