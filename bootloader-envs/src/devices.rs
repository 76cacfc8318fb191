//! Opening the copies named in an fw_env.config: files and block devices, NOR/NAND MTD
//! character devices (through liminix-flash's `MtdFlash`) and UBI volumes (through liminix-ubi).

use std::io::Read;
use std::path::{Path, PathBuf};

use liminix_flash::MtdFlash;

use crate::config::ConfigEntry;
use crate::error::{EnvError, Result};
use crate::layout::FlagScheme;
use crate::storage::{CopyDevice, FileCopy, MtdCopy};

/// What kind of storage a config line names (libubootenv decides by path prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceKind {
    /// `/dev/mtd*`.
    Mtd(PathBuf),
    /// `/dev/ubi*`, with the text after `:` (volume name) if any.
    Ubi(String),
    /// Anything else: regular file or block device.
    File(PathBuf),
}

/// Resolves symlinks in the device part (before any `:volume`) and classifies it.
/// The device must exist, as libubootenv requires.
pub fn classify(device: &Path) -> Result<DeviceKind> {
    let text = device.to_string_lossy();
    let (dev, vol) = match text.split_once(':') {
        Some((d, v)) => (d.to_string(), Some(v.to_string())),
        None => (text.to_string(), None),
    };
    let real =
        std::fs::canonicalize(&dev).map_err(|e| EnvError::io(format!("resolve {dev}"), e))?;
    let r = real.to_string_lossy().into_owned();
    Ok(if r.starts_with("/dev/mtd") {
        DeviceKind::Mtd(real)
    } else if r.starts_with("/dev/ubi") {
        DeviceKind::Ubi(match vol {
            Some(v) => format!("{r}:{v}"),
            None => r,
        })
    } else {
        DeviceKind::File(real)
    })
}

/// Opens one copy; `writable` opens MTD devices read-write.
pub fn open_copy(entry: &ConfigEntry, writable: bool) -> Result<Box<dyn CopyDevice>> {
    Ok(match classify(&entry.device)? {
        DeviceKind::File(p) => Box::new(FileCopy::new(p, entry.offset)),
        DeviceKind::Mtd(p) => {
            let dev = liminix_mtd::MtdDevice::open(&p, writable).map_err(|e| {
                EnvError::io(format!("open {}", p.display()), std::io::Error::other(e))
            })?;
            let offset = u64::try_from(entry.offset)
                .map_err(|_| EnvError::Geometry("negative offset on an MTD device".into()))?;
            let name = p.display().to_string();
            Box::new(MtdCopy::new(
                MtdFlash::new(dev),
                name,
                offset,
                entry.sector_size,
                entry.sectors,
            ))
        }
        DeviceKind::Ubi(spec) => Box::new(UbiCopy::open(Path::new("/"), &spec)?),
    })
}

/// A copy that is a whole UBI volume, replaced by one volume update (UBI_IOCVOLUP):
/// the kernel keeps the update marker until all bytes arrived, so a torn update leaves
/// the volume marked corrupt rather than half old, half new.
pub struct UbiCopy {
    root: PathBuf,
    ubi: u32,
    vol: u32,
}

impl UbiCopy {
    /// `spec`: `/dev/ubi0_1`, `/dev/ubi0:name`, `ubi0:name`; sysfs is read under `root`.
    pub fn open(root: &Path, spec: &str) -> Result<Self> {
        let (ubi, vol) = liminix_ubi::resolve_volume(root, spec)
            .map_err(|e| EnvError::io(format!("resolve {spec}"), std::io::Error::other(e)))?;
        Ok(UbiCopy {
            root: root.to_owned(),
            ubi,
            vol,
        })
    }
}

impl CopyDevice for UbiCopy {
    fn describe(&self) -> String {
        format!("/dev/ubi{}_{}", self.ubi, self.vol)
    }

    fn read_copy(&mut self, buf: &mut [u8]) -> Result<()> {
        let what = || format!("read {}", self.describe());
        let mut f = liminix_ubi::open_volume_read(&self.root, self.ubi, self.vol)
            .map_err(|e| EnvError::io(what(), std::io::Error::other(e)))?;
        f.read_exact(buf).map_err(|e| EnvError::io(what(), e))
    }

    fn write_copy(&mut self, data: &[u8]) -> Result<()> {
        liminix_ubi::write_volume(&self.root, self.ubi, self.vol, data).map_err(|e| {
            EnvError::io(
                format!("update {}", self.describe()),
                std::io::Error::other(e),
            )
        })
    }

    fn flag_scheme(&self) -> FlagScheme {
        FlagScheme::Incremental
    }

    fn mark_obsolete(&mut self) -> Result<()> {
        Err(EnvError::Geometry(
            "UBI volumes use incremental flags".into(),
        ))
    }
}

/// Builds an [`crate::EnvStore`] for a parsed config (CRC in this machine's byte order,
/// as fw_printenv does).
pub fn open_store(cfg: &crate::FwEnvConfig, writable: bool) -> Result<crate::EnvStore> {
    let size = usize::try_from(cfg.entries[0].env_size)
        .map_err(|_| EnvError::Geometry("env size too large".into()))?;
    let layout = crate::Layout::new(size, cfg.redundant(), crate::Endian::native())?;
    let copies = cfg
        .entries
        .iter()
        .map(|e| open_copy(e, writable))
        .collect::<Result<Vec<_>>>()?;
    crate::EnvStore::new(layout, copies)
}

/// Reads an fw_env.config and opens its copies (the usual way to get an [`crate::EnvStore`]).
pub fn open_config(path: &Path, writable: bool) -> Result<crate::EnvStore> {
    open_store(&crate::FwEnvConfig::load(path)?, writable)
}
