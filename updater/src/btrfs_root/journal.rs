//! The install journal: one small JSON file on the btrfs top level, beside the subvolumes it
//! describes, so that it survives with them. Written atomically; absent when nothing is under
//! way.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::BtrfsRootError;
use crate::error::{AgentError, Result};
use crate::staging::write_atomic;

const FILE: &str = ".liminix-install.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// A generation is installed into the staging subvolume.
    Install,
    /// A snapshot's writable copy is in the staging subvolume.
    Restore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The staging subvolume is being filled; `@` is untouched.
    Filling,
    /// The staging subvolume is complete and replaces `@`.
    Switching,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub purpose: Purpose,
    pub step: Step,
    /// The read-only snapshot of `@` taken before anything else (install), or the snapshot
    /// being made `@` again (restore).
    pub snapshot: String,
}

pub fn path(top: &Path) -> PathBuf {
    top.join(FILE)
}

pub fn read(top: &Path) -> Result<Option<Journal>> {
    let p = path(top);
    match std::fs::read(&p) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|source| BtrfsRootError::Journal { path: p, source }.into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AgentError::io("reading", &p)(e)),
    }
}

pub fn write(top: &Path, j: &Journal) -> Result<()> {
    // Serialising a struct of strings and unit enums cannot fail.
    let text = serde_json::to_vec_pretty(j).unwrap_or_default();
    write_atomic(&path(top), &text)
}

pub fn remove(top: &Path) -> Result<()> {
    let p = path(top);
    match std::fs::remove_file(&p) {
        Ok(()) => crate::staging::sync_dir(top),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AgentError::io("removing", &p)(e)),
    }
}
