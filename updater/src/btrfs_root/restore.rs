//! `restore-snapshot NAME`: the snapshot becomes `@` again. The current `@` is kept first as
//! a read-only snapshot of its own, then a writable copy of NAME is switched in as an
//! install's new root is, journalled the same way.

use std::path::Path;

use super::journal::{self, Journal, Purpose, Step};
use super::swap;
use super::{target, BtrfsRootError, ACTIVE, OUTGOING, STAGING};
use crate::error::Result;
use crate::root::DeviceRoot;

#[derive(Debug, serde::Serialize)]
pub struct Restored {
    pub snapshot: String,
    /// The snapshot of the `@` that was replaced (`None` when an earlier run took it).
    pub kept: Option<String>,
    pub kept_outgoing: bool,
}

/// The snapshots on the filesystem: subvolumes of the top level other than the working ones.
pub fn list(root: &DeviceRoot, device: Option<&Path>) -> Result<Vec<String>> {
    let top = target::mount(root, device)?;
    snapshots(&top.dir)
}

fn snapshots(top: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(top).map_err(crate::error::AgentError::io("listing", top))?;
    let mut names = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if [ACTIVE, STAGING, OUTGOING].contains(&name.as_str()) {
            continue;
        }
        if liminix_btrfs::is_subvolume(&e.path()).map_err(BtrfsRootError::from)? {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

pub fn restore(root: &DeviceRoot, device: Option<&Path>, name: &str, now: u64) -> Result<Restored> {
    let top = target::mount(root, device)?;
    let dir = top.dir.as_path();
    let mut kept = None;
    let resuming = journal::read(dir)?.filter(|j| {
        j.purpose == Purpose::Restore && j.snapshot == name && j.step == Step::Switching
    });
    if resuming.is_none() {
        if [ACTIVE, STAGING, OUTGOING].contains(&name)
            || !liminix_btrfs::is_subvolume(&dir.join(name)).map_err(BtrfsRootError::from)?
        {
            return Err(BtrfsRootError::NoSnapshot {
                name: name.into(),
                dir: dir.to_owned(),
                known: snapshots(dir)?.join(", "),
            }
            .into());
        }
        // An install or restore under way is abandoned: its staging root is not `@` yet.
        swap::discard(dir, STAGING)?;
        let mut j = Journal {
            purpose: Purpose::Restore,
            step: Step::Filling,
            snapshot: name.into(),
        };
        journal::write(dir, &j)?;
        let before = super::steps::snapshot_name(now, "before-restore");
        if !liminix_btrfs::is_subvolume(&dir.join(&before)).map_err(BtrfsRootError::from)? {
            liminix_btrfs::snapshot(&dir.join(ACTIVE), dir, &before, true)
                .map_err(BtrfsRootError::from)?;
        }
        kept = Some(before);
        liminix_btrfs::snapshot(&dir.join(name), dir, STAGING, false)
            .map_err(BtrfsRootError::from)?;
        j.step = Step::Switching;
        journal::write(dir, &j)?;
    }
    let switched = swap::switch(dir)?;
    journal::remove(dir)?;
    Ok(Restored {
        snapshot: name.into(),
        kept,
        kept_outgoing: switched.kept_outgoing,
    })
}
