//! What the agent remembers across the reboot into a trial, in the A/B records directory
//! ([`DeviceRoot::ab_records`], shared by both slots): the pending trial, and the last
//! rollback with the log of the failed boot that pstore kept.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::slot::Slot;
use super::{AbError, ConfigError};
use crate::root::DeviceRoot;

/// Written before the flow points the next reset at the new slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub from: Slot,
    pub to: Slot,
    pub installed_at: u64,
    /// SHA-256 of the kernel and rootfs images written (hex).
    pub images: Vec<String>,
}

/// One pstore record of the failed boot.
pub use crate::pstore::Record as PstoreEntry;

/// Written by the old slot's agent when it finds the trial did not confirm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollback {
    pub failed: Slot,
    pub running: Slot,
    pub installed_at: u64,
    pub detected_at: u64,
    pub pstore: Vec<PstoreEntry>,
}

fn path(root: &DeviceRoot, name: &str) -> PathBuf {
    root.ab_records().join(name)
}

fn read<T: for<'de> Deserialize<'de>>(p: &Path) -> Result<Option<T>, AbError> {
    match std::fs::read(p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|source| {
            ConfigError::Parse {
                path: p.to_owned(),
                source,
            }
            .into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AbError::file("read", p)(e)),
    }
}

/// Write to a temporary name, fsync, rename, sync the directory: a reader sees the old
/// or the new record, and so does the next boot.
fn write<T: Serialize>(p: &Path, v: &T) -> Result<(), AbError> {
    let dir = p.parent().expect("record paths have a parent");
    std::fs::create_dir_all(dir).map_err(AbError::file("create", dir))?;
    let tmp = p.with_extension("tmp");
    let body = serde_json::to_vec_pretty(v).expect("records serialise");
    let io = AbError::file("write", p);
    let f = std::fs::File::create(&tmp).map_err(io)?;
    std::io::Write::write_all(&mut &f, &body).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, p).map_err(io)?;
    sync_dir(dir)
}

fn remove(p: &Path) -> Result<(), AbError> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(AbError::file("remove", p)(e)),
        Err(_) => Ok(()),
        Ok(()) => sync_dir(p.parent().expect("record paths have a parent")),
    }
}

/// fsync of the directory, then syncfs of its filesystem: UBIFS's fsync does not sync
/// the MTD device below it, and a driver that buffers (block2mtd) writes through only then.
fn sync_dir(dir: &Path) -> Result<(), AbError> {
    let err = AbError::file("sync", dir);
    let d = std::fs::File::open(dir).map_err(err)?;
    d.sync_all().map_err(err)?;
    rustix::fs::syncfs(&d).map_err(|e| err(e.into()))
}

pub fn pending(root: &DeviceRoot) -> Result<Option<Pending>, AbError> {
    read(&path(root, "pending.json"))
}

pub fn set_pending(root: &DeviceRoot, p: &Pending) -> Result<(), AbError> {
    write(&path(root, "pending.json"), p)
}

pub fn clear_pending(root: &DeviceRoot) -> Result<(), AbError> {
    remove(&path(root, "pending.json"))
}

pub fn last_rollback(root: &DeviceRoot) -> Result<Option<Rollback>, AbError> {
    read(&path(root, "rollback.json"))
}

pub fn set_rollback(root: &DeviceRoot, r: &Rollback) -> Result<(), AbError> {
    write(&path(root, "rollback.json"), r)
}

/// Removes the given pstore records (which frees ramoops' slots for the next crash).
pub fn drop_pstore(root: &DeviceRoot, entries: &[PstoreEntry]) {
    crate::pstore::drop_from_pstore(root, entries.iter().map(|e| e.name.as_str()));
}

/// The records of the previous boot, in pstore or saved by `boot-log` ([`crate::pstore`]).
pub fn read_pstore(root: &DeviceRoot) -> Vec<PstoreEntry> {
    crate::pstore::records(root)
}
