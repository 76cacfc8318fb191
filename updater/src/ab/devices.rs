//! Opening the real targets of a slot and the boot-loader state below `--root`:
//! MTD partitions by name, UBI volumes (attaching the slot's UBI partition when the
//! running system has not), block devices or files, the bootconfig partition and the
//! fw_env.config environment.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use liminix_boards::VolumeKind;
use liminix_bootenv::zyxel::BootconfigDevice;
use liminix_flash::{Flash, FlashError, Geometry, MtdFlash, VolKind};

use super::flow::BootFlow;
use super::install::VolumeSpec;
use super::slot::{FlowConfig, SlotLayout, Target};
use super::uboot::UBootEnvFlow;
use super::zyxel::ZyxelFlow;
use super::AbError;
use crate::root::DeviceRoot;

pub use super::slot_ubi::{SlotUbi, UbiAttach};

/// Erase unit assumed for block devices and files: writes are compared and rewritten
/// in units of this size.
pub const BLOCK_UNIT: u32 = 64 * 1024;

/// A block device or file seen as NOR-like flash: "erase" fills with 0xFF (so the raw
/// writer's skipped all-0xFF chunks read right), program is a plain write. Opened with
/// O_DSYNC, so like MTD every write is on the medium when it returns and a power cut
/// leaves exactly the blocks written so far.
pub struct BlockFlash {
    file: File,
    size: u64,
    name: String,
}

impl BlockFlash {
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        let dsync = rustix::fs::OFlags::DSYNC.bits() as i32;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(dsync)
            .open(path)?;
        let size = io::Seek::seek(&mut &file, io::SeekFrom::End(0))?;
        Ok(BlockFlash {
            file,
            size: size - size % u64::from(BLOCK_UNIT),
            name: path.display().to_string(),
        })
    }

    fn io(&self, op: &'static str, off: u64) -> impl FnOnce(io::Error) -> FlashError {
        let name = self.name.clone();
        move |e| FlashError::Io {
            op,
            off,
            source: io::Error::new(e.kind(), format!("{name}: {e}")),
        }
    }
}

impl Flash for BlockFlash {
    fn geometry(&self) -> Geometry {
        Geometry {
            size: self.size,
            erase_size: BLOCK_UNIT,
            write_size: 1,
            is_nand: false,
        }
    }
    fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        self.file
            .read_exact_at(buf, off)
            .map_err(self.io("read", off))
    }
    fn erase_block(&mut self, off: u64) -> Result<(), FlashError> {
        let ff = vec![0xFFu8; BLOCK_UNIT as usize];
        self.file
            .write_all_at(&ff, off)
            .map_err(self.io("erase", off))
    }
    fn program(&mut self, off: u64, data: &[u8]) -> Result<(), FlashError> {
        self.file
            .write_all_at(data, off)
            .map_err(self.io("program", off))
    }
    fn is_bad(&mut self, _off: u64) -> Result<bool, FlashError> {
        Ok(false)
    }
    fn mark_bad(&mut self, off: u64) -> Result<(), FlashError> {
        Err(FlashError::EraseFailed { off })
    }
    fn corrected_bitflips(&mut self) -> Result<u64, FlashError> {
        Ok(0)
    }
    fn sync(&mut self) -> Result<(), FlashError> {
        self.file.sync_data().map_err(self.io("sync", 0))
    }
}

/// Resolves `mtd:NAME` (sysfs below the root) or a device path.
pub(crate) fn device_path(root: &DeviceRoot, spec: &str) -> Result<PathBuf, AbError> {
    if spec.starts_with("mtd:") {
        liminix_mtd::sysfs::resolve_device(root.dir(), spec).map_err(|source| {
            super::ConfigError::Partition {
                spec: spec.to_owned(),
                source,
            }
            .into()
        })
    } else {
        Ok(root.join(spec))
    }
}

/// An opened target.
pub enum OpenTarget {
    Mtd(MtdFlash),
    Block(BlockFlash),
    Volume {
        ubi: SlotUbi,
        name: String,
        make: Option<VolumeSpec>,
    },
}

/// Opens one target of a slot for writing. A UBI partition nobody attached is attached
/// here (see [`SlotUbi`]); nothing is written to the slot's volumes yet.
pub fn open_target(root: &DeviceRoot, t: &Target) -> Result<OpenTarget, AbError> {
    Ok(match t {
        Target::Mtd { name } => {
            let path = device_path(root, &format!("mtd:{name}"))?;
            OpenTarget::Mtd(
                MtdFlash::open(&path, true).map_err(|e| AbError::io("open MTD partition", e))?,
            )
        }
        Target::Block { path } => OpenTarget::Block(
            BlockFlash::open(&root.join(path)).map_err(|e| AbError::io("open block target", e))?,
        ),
        Target::UbiVolume { ubi, volume } => OpenTarget::Volume {
            ubi: SlotUbi::attached(root, *ubi, volume)?,
            name: volume.clone(),
            make: None,
        },
        Target::UbiPartition {
            partition,
            volume,
            volume_type,
            size,
        } => OpenTarget::Volume {
            ubi: SlotUbi::on_partition(root, partition, volume)?,
            name: volume.clone(),
            make: Some(VolumeSpec {
                kind: match volume_type {
                    VolumeKind::Dynamic => VolKind::Dynamic,
                    VolumeKind::Static => VolKind::Static,
                },
                bytes: *size,
            }),
        },
    })
}

/// Opens the board's boot flow.
pub fn open_flow(root: &DeviceRoot, board: &SlotLayout) -> Result<Box<dyn BootFlow>, AbError> {
    Ok(match &board.flow {
        FlowConfig::Zyxel { device, offset } => {
            let path = device_path(root, device)?;
            let dev =
                BootconfigDevice::open(&path, *offset).map_err(AbError::boot("open bootconfig"))?;
            Box::new(ZyxelFlow::new(dev))
        }
        FlowConfig::UbootEnv { config, attempts } => {
            let store = liminix_bootenv::devices::open_config(&root.join(config), true)
                .map_err(AbError::boot("open U-Boot environment"))?;
            Box::new(UBootEnvFlow::new(store, *attempts)?)
        }
    })
}
