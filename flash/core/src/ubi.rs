//! The `Ubi` trait: the UBI device operations the volume-update strategies
//! need, implemented by real `/dev/ubiX` devices ([`UbiDev`](crate::UbiDev)) and,
//! in tests, by the simulator's `SimUbi` (feature `sim`).

use std::io::{self, Read};

/// UBI volume type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VolKind {
    /// Read-write block store (UBIFS); reads cover the whole reserved size.
    #[default]
    Dynamic,
    /// One CRC-checked blob (kernel, squashfs); reads return exactly the data.
    Static,
}

/// One UBI volume as the strategies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbiVolume {
    /// Volume id.
    pub id: u32,
    /// Volume name.
    pub name: String,
    /// Dynamic or static.
    pub kind: VolKind,
    /// Reserved size in bytes (reserved LEBs × usable LEB size).
    pub reserved_bytes: u64,
    /// Update marker set or data corrupted: reads fail until a new update completes.
    pub corrupted: bool,
}

/// Failure of a UBI operation.
#[derive(Debug, thiserror::Error)]
pub enum UbiError {
    /// The (simulated) power failed.
    #[error("power cut during {op}")]
    PowerCut { op: &'static str },
    /// Not enough free LEBs.
    #[error("not enough free space: need {need} bytes, {avail} available")]
    NoSpace { need: u64, avail: u64 },
    /// No volume with this id.
    #[error("no UBI volume with id {0}")]
    NoVolume(u32),
    /// A volume with this name already exists.
    #[error("a UBI volume named {0:?} already exists")]
    NameExists(String),
    /// The volume has its update marker set (interrupted update).
    #[error("UBI volume {0} is corrupted (interrupted update)")]
    Corrupted(u32),
    /// An update of more bytes than the volume reserves.
    #[error("{len} bytes do not fit volume {id} ({max} bytes reserved)")]
    TooLarge { id: u32, len: u64, max: u64 },
    /// The update stream ended or overran the announced size.
    #[error("volume update of {id}: wrote {written} of {total} bytes")]
    ShortUpdate { id: u32, written: u64, total: u64 },
    /// Invalid request (bad name, duplicate ids in a rename, ...).
    #[error("invalid UBI request: {0}")]
    Invalid(String),
    /// Operating-system error from a real device.
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl UbiError {
    /// Whether this error means the power went away (simulation only).
    pub fn is_power_cut(&self) -> bool {
        matches!(self, UbiError::PowerCut { .. })
    }
}

/// An open volume update (`UBI_IOCVOLUP` + writes). Dropping it before
/// [`VolumeUpdate::finish`] leaves the volume marked corrupted, like closing
/// the kernel fd early.
pub trait VolumeUpdate {
    /// Append data; the total must not exceed the announced size.
    fn write(&mut self, data: &[u8]) -> Result<(), UbiError>;
    /// Check that exactly the announced size was written and commit.
    fn finish(self: Box<Self>) -> Result<(), UbiError>;
}

/// UBI device operations (one attached device, e.g. `ubi0`).
pub trait Ubi {
    /// Usable bytes per LEB.
    fn leb_size(&mut self) -> Result<u64, UbiError>;
    /// Bytes available for new volumes (free LEBs × LEB size).
    fn avail_bytes(&mut self) -> Result<u64, UbiError>;
    /// All volumes.
    fn volumes(&mut self) -> Result<Vec<UbiVolume>, UbiError>;
    /// Create a volume of at least `bytes`; returns its id.
    fn make_volume(&mut self, name: &str, bytes: u64, kind: VolKind) -> Result<u32, UbiError>;
    /// Remove a volume.
    fn remove_volume(&mut self, id: u32) -> Result<(), UbiError>;
    /// Rename volumes in one atomic volume-table update (`UBI_IOCRNVOL`).
    fn rename_volumes(&mut self, renames: &[(u32, &str)]) -> Result<(), UbiError>;
    /// Start replacing the contents of volume `id` with `total` bytes.
    fn start_update(&mut self, id: u32, total: u64)
        -> Result<Box<dyn VolumeUpdate + '_>, UbiError>;
    /// Read the volume from its start.
    fn open_read(&mut self, id: u32) -> Result<Box<dyn Read + '_>, UbiError>;
    /// Make every completed volume update, volume-table change and removal
    /// durable (see [`Flash::sync`](crate::Flash::sync): UBI writes through to
    /// its MTD device, which may buffer them). A change is done, and may be
    /// reported or have its journal record cleared, only after this.
    fn sync(&mut self) -> Result<(), UbiError>;

    /// The volume called `name`, if any.
    fn volume_by_name(&mut self, name: &str) -> Result<Option<UbiVolume>, UbiError> {
        Ok(self.volumes()?.into_iter().find(|v| v.name == name))
    }
}

/// Read the first `len` bytes of volume `id`. `Ok(None)` when the volume is
/// corrupted or shorter than `len`.
pub fn read_volume(ubi: &mut dyn Ubi, id: u32, len: u64) -> Result<Option<Vec<u8>>, UbiError> {
    let mut r = match ubi.open_read(id) {
        Ok(r) => r,
        Err(UbiError::Corrupted(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    match r.by_ref().take(len).read_to_end(&mut out) {
        Ok(_) if out.len() as u64 == len => Ok(Some(out)),
        Ok(_) => Ok(None),
        Err(e) if e.raw_os_error() == Some(9) => Ok(None),
        Err(source) => Err(UbiError::Io {
            op: "read volume",
            source,
        }),
    }
}
