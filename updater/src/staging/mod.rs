//! Staging: a directory where data is written and verified before anything uses it, so that a
//! crash or a bad byte never leaves a half-written thing under its final name. What a staging
//! directory holds after a crash was never switched in and is discarded.
//!
//! The agent has three staging directories, one per consumer, each where its switch needs it
//! (the paths come from [`crate::root::DeviceRoot`]):
//! - the store's (`/nix/store/.liminix-staging`): received store paths wait there until their
//!   NAR hash matched and they are renamed into the store (same filesystem, so the rename is
//!   atomic);
//! - the image staging directory (`/run/liminix/staging`, or `apply --staging`): `apply` streams
//!   every image there, hashing as it writes ([`images`]), before the first flash write;
//! - the journal's (`JOURNAL/staging`): the copy a journalled flash write can be finished from
//!   after a power cut ([`journal`]).
//!
//! Small files take the same path on a smaller scale: [`write_atomic`] writes a temporary
//! sibling, syncs it and renames it over the old one.

pub mod images;
pub mod journal;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{AgentError, Result};

/// Empties the staging directory `dir` and creates it again: what an interrupted run left
/// there was never verified.
pub fn reset(dir: &Path) -> Result<()> {
    liminix_bundle::nar::remove_tree(dir).map_err(AgentError::io("clearing staging", dir))?;
    std::fs::create_dir(dir).map_err(AgentError::io("creating staging", dir))
}

/// Creates `dir` and its missing parents; returns those it created, deepest first, for
/// [`remove_made`] to take back when what they were made for is refused.
pub fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let missing = missing_dirs(dir);
    fs::create_dir_all(dir).map_err(AgentError::io("creating", dir))?;
    Ok(missing)
}

/// `dir` and those of its parents that do not exist, deepest first.
pub fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|a| fs::symlink_metadata(a).is_err())
        .map(Path::to_owned)
        .collect()
}

/// Removes directories [`create_dirs`] made, deepest first, as far as they are empty: whatever
/// another run put in one meanwhile keeps it.
pub fn remove_made(dirs: &[PathBuf]) {
    for d in dirs {
        if fs::remove_dir(d).is_err() {
            return;
        }
    }
}

/// Space on the filesystem holding `dir`: (available bytes, block size, available inodes or None).
pub fn free_space(dir: &Path) -> Result<(u64, u64, Option<u64>)> {
    let st = rustix::fs::statvfs(dir).map_err(|e| AgentError::Io {
        what: "statvfs",
        path: dir.to_owned(),
        source: e.into(),
    })?;
    let inodes = (st.f_files > 0).then_some(st.f_favail);
    Ok((st.f_bavail * st.f_frsize, st.f_bsize.max(512), inodes))
}

pub fn sync_fs(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(AgentError::io("opening", dir))?;
    rustix::fs::syncfs(&f).map_err(|e| AgentError::Io {
        what: "syncing filesystem of",
        path: dir.to_owned(),
        source: e.into(),
    })
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(AgentError::io("opening", dir))?;
    f.sync_all().map_err(AgentError::io("syncing", dir))
}

/// Writes `data` to `path` atomically: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tmp = tmp_name(path);
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        io::Write::write_all(&mut f, data)?;
        f.sync_all()
    };
    write().map_err(AgentError::io("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(AgentError::io("renaming", path))?;
    sync_dir(dir)
}

/// Points the symlink `path` at `target` atomically (replacing whatever `path` was).
pub fn symlink_atomic(target: &str, path: &Path) -> Result<()> {
    let tmp = tmp_name(path);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(AgentError::io("creating link", &tmp))?;
    fs::rename(&tmp, path).map_err(AgentError::io("replacing", path))?;
    sync_dir(path.parent().unwrap_or(Path::new("/")))
}

fn tmp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
