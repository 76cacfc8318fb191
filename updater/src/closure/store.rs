//! The device's Nix store as the agent manages it: no Nix database, just directories.
//!
//! A store path is only ever given its final name by a `rename` from the store's staging
//! directory ([`crate::staging`]) after its NAR hash matched the signed manifest and its data was
//! synced, so a path that exists is complete; deletion renames into a trash directory first, so
//! a half-deleted path never keeps its name.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use liminix_bundle::nar;
use liminix_bundle::storepath::StorePath;
use rustix::fs::{flock, FlockOperation};

use crate::error::{AgentError, Result};
use crate::staging::{sync_dir, sync_fs};

use crate::root::DeviceRoot;

pub struct Store {
    dir: PathBuf,
    staging: PathBuf,
    trash: PathBuf,
    _lock: File,
}

impl Store {
    /// Opens (creating if needed) the device's store and takes the agent's exclusive lock.
    pub fn open_locked(root: &DeviceRoot) -> Result<Store> {
        let dir = &root.store();
        fs::create_dir_all(dir).map_err(AgentError::io("creating store", dir))?;
        let lock_path = root.store_lock();
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(AgentError::io("opening lock", &lock_path))?;
        flock(&lock, FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| AgentError::Busy(dir.to_owned()))?;
        Ok(Store {
            dir: dir.to_owned(),
            staging: root.store_staging(),
            trash: root.store_trash(),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, p: &StorePath) -> PathBuf {
        self.dir.join(p.base_name())
    }

    pub fn has(&self, p: &StorePath) -> bool {
        fs::symlink_metadata(self.path_of(p)).is_ok()
    }

    /// Empties the store's staging directory (whatever an interrupted run left there was never
    /// verified) and returns it.
    pub fn reset_staging(&self) -> Result<PathBuf> {
        crate::staging::reset(&self.staging)?;
        Ok(self.staging.clone())
    }

    /// Moves verified, synced paths from staging to their final names.
    pub fn commit_staged(&self, paths: &[StorePath]) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        sync_fs(&self.dir)?;
        for p in paths {
            let from = self.staging.join(p.base_name());
            let to = self.path_of(p);
            fs::rename(&from, &to).map_err(AgentError::io("renaming into the store", &to))?;
        }
        sync_dir(&self.dir)
    }

    /// Every valid store path present (not the agent's own bookkeeping entries).
    pub fn list(&self) -> Result<Vec<StorePath>> {
        let entries = fs::read_dir(&self.dir).map_err(AgentError::io("listing", &self.dir))?;
        let mut out: Vec<StorePath> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| StorePath::from_base_name(e.file_name().to_str()?).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Removes a store path so that it is either whole under its name or gone.
    pub fn delete(&self, p: &StorePath) -> Result<()> {
        let trash = &self.trash;
        fs::create_dir_all(trash).map_err(AgentError::io("creating", trash))?;
        let parked = trash.join(p.base_name());
        nar::remove_tree(&parked).map_err(AgentError::io("removing", &parked))?;
        fs::rename(self.path_of(p), &parked).map_err(AgentError::io("moving to trash", &parked))?;
        nar::remove_tree(&parked).map_err(AgentError::io("removing", &parked))
    }

    /// Finishes deletions a crash interrupted.
    pub fn empty_trash(&self) -> Result<()> {
        nar::remove_tree(&self.trash).map_err(AgentError::io("removing", &self.trash))
    }

    /// Store paths with the same package name as `p` (other hashes): candidate delta bases.
    pub fn same_name(&self, p: &StorePath, all: &[StorePath]) -> Option<StorePath> {
        all.iter()
            .find(|q| q.name() == p.name() && *q != p)
            .cloned()
    }
}
