//! [`Ubi`] on a real `/dev/ubiX` through `liminix-ubi`.
//!
//! A volume whose update marker is set (or a
//! static volume failing its CRC) is reported `corrupted` and not opened for
//! reading. Volume updates stream through `UBI_IOCVOLUP`; the read handle must
//! be dropped before an update starts (the kernel wants an exclusive opener).
//!
//! [`Ubi::sync`] is `fsync` of a volume node: the kernel answers it with
//! `ubi_sync`, which syncs the whole MTD device below (any volume will do). A
//! device without volumes is synced like an MTD partition, by closing a
//! descriptor of its MTD node opened for writing.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use liminix_ubi::{UbiDevice, VolumeKind, VolumeWriter};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::ubi::{Ubi, UbiError, UbiVolume, VolKind, VolumeUpdate};

/// A real attached UBI device.
#[derive(Debug)]
pub struct UbiDev {
    root: PathBuf,
    dev: UbiDevice,
}

impl UbiDev {
    /// Open `ROOT/dev/ubiN` (sysfs is read under the same root).
    pub fn open(root: &Path, ubi_num: u32) -> Result<Self, liminix_ubi::UbiError> {
        Ok(UbiDev {
            root: root.to_path_buf(),
            dev: UbiDevice::open(root, ubi_num)?,
        })
    }

    /// The underlying device.
    pub fn device(&self) -> &UbiDevice {
        &self.dev
    }
}

fn io(op: &'static str, e: liminix_ubi::UbiError) -> UbiError {
    UbiError::Io {
        op,
        source: io::Error::other(e),
    }
}

impl Ubi for UbiDev {
    fn leb_size(&mut self) -> Result<u64, UbiError> {
        Ok(u64::from(
            self.dev.info().map_err(|e| io("device info", e))?.eb_size,
        ))
    }

    fn avail_bytes(&mut self) -> Result<u64, UbiError> {
        let i = self.dev.info().map_err(|e| io("device info", e))?;
        Ok(u64::from(i.avail_ebs) * u64::from(i.eb_size))
    }

    fn volumes(&mut self) -> Result<Vec<UbiVolume>, UbiError> {
        let vols = self.dev.volumes().map_err(|e| io("list volumes", e))?;
        Ok(vols
            .into_iter()
            .map(|v| UbiVolume {
                id: v.id,
                name: v.name,
                kind: match v.kind {
                    VolumeKind::Dynamic => VolKind::Dynamic,
                    VolumeKind::Static => VolKind::Static,
                },
                reserved_bytes: u64::from(v.reserved_ebs) * u64::from(v.usable_eb_size),
                corrupted: v.corrupted || v.upd_marker,
            })
            .collect())
    }

    fn make_volume(&mut self, name: &str, bytes: u64, kind: VolKind) -> Result<u32, UbiError> {
        let kind = match kind {
            VolKind::Dynamic => VolumeKind::Dynamic,
            VolKind::Static => VolumeKind::Static,
        };
        match self.dev.make_volume(name, bytes, kind, None) {
            Ok(id) => Ok(id),
            Err(liminix_ubi::UbiError::Ioctl {
                source: Errno::NOSPC,
                ..
            }) => Err(UbiError::NoSpace {
                need: bytes,
                avail: self.avail_bytes()?,
            }),
            Err(liminix_ubi::UbiError::Ioctl {
                source: Errno::EXIST,
                ..
            }) => Err(UbiError::NameExists(name.into())),
            Err(e) => Err(io("make volume", e)),
        }
    }

    fn remove_volume(&mut self, id: u32) -> Result<(), UbiError> {
        self.dev
            .remove_volume(id)
            .map_err(|e| io("remove volume", e))
    }

    fn rename_volumes(&mut self, renames: &[(u32, &str)]) -> Result<(), UbiError> {
        self.dev
            .rename_volumes(renames)
            .map_err(|e| io("rename volumes", e))
    }

    fn start_update(
        &mut self,
        id: u32,
        total: u64,
    ) -> Result<Box<dyn VolumeUpdate + '_>, UbiError> {
        let w = liminix_ubi::start_update(&self.root, self.dev.number(), id, total)
            .map_err(|e| io("start volume update", e))?;
        Ok(Box::new(RealUpdate(w)))
    }

    fn open_read(&mut self, id: u32) -> Result<Box<dyn Read + '_>, UbiError> {
        match self.volumes()?.into_iter().find(|v| v.id == id) {
            None => Err(UbiError::NoVolume(id)),
            Some(v) if v.corrupted => Err(UbiError::Corrupted(id)),
            Some(_) => {
                let f = liminix_ubi::open_volume_read(&self.root, self.dev.number(), id)
                    .map_err(|e| io("open volume", e))?;
                Ok(Box::new(io::BufReader::new(f)))
            }
        }
    }

    fn sync(&mut self) -> Result<(), UbiError> {
        let num = self.dev.number();
        let sync_err = |source| UbiError::Io { op: "sync", source };
        let Some(vol) = self
            .dev
            .volumes()
            .map_err(|e| io("list volumes", e))?
            .first()
            .map(|v| v.id)
        else {
            let mtd = self.dev.info().map_err(|e| io("device info", e))?.mtd_num;
            let path = self.root.join(format!("dev/mtd{mtd}"));
            let fd = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty());
            return fd.map(drop).map_err(|e| sync_err(e.into()));
        };
        let f = liminix_ubi::open_volume_read(&self.root, num, vol)
            .map_err(|e| io("open volume", e))?;
        f.sync_all().map_err(sync_err)
    }
}

struct RealUpdate(VolumeWriter);

impl VolumeUpdate for RealUpdate {
    fn write(&mut self, data: &[u8]) -> Result<(), UbiError> {
        self.0.write_all(data).map_err(|source| UbiError::Io {
            op: "volume update write",
            source,
        })
    }

    fn finish(self: Box<Self>) -> Result<(), UbiError> {
        self.0.finish().map_err(|e| io("finish volume update", e))
    }
}
