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
    /// Takes the agent's exclusive lock on the device and opens its store, which may not exist
    /// yet: nothing is created until [`Self::create_dirs`], so a refused bundle leaves no trace.
    pub fn open_locked(root: &DeviceRoot) -> Result<Store> {
        let dir = &root.store();
        let lock = root.lock()?;
        Ok(Store {
            dir: dir.to_owned(),
            staging: root.store_staging(),
            trash: root.store_trash(),
            _lock: lock,
        })
    }

    /// Creates the store's directory and its parents as needed; returns those it created,
    /// deepest first, so that undoing is removing them in order.
    pub fn create_dirs(&self) -> Result<Vec<PathBuf>> {
        crate::staging::create_dirs(&self.dir)
    }

    /// The nearest existing directory at or above the store, whose filesystem the store will
    /// be on.
    pub fn space_dir(&self) -> &Path {
        self.dir
            .ancestors()
            .find(|a| a.is_dir())
            .unwrap_or(Path::new("/"))
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

    /// Where received paths wait for their verification.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Removes the staging directory and whatever is still in it (never verified).
    pub fn remove_staging(&self) -> Result<()> {
        nar::remove_tree(&self.staging).map_err(AgentError::io("clearing staging", &self.staging))
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
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(AgentError::io("listing", &self.dir)(e)),
        };
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
