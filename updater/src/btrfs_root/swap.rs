//! Replacing `@` by the staging subvolume with two renames. Every state between them is
//! recognised from which of the three names exist, so a cut switch is finished by running
//! it again; `@` is missing only between the two renames.

use std::path::Path;

use super::{BtrfsRootError, ACTIVE, OUTGOING, STAGING};
use crate::error::{AgentError, Result};

#[derive(Debug, Default)]
pub struct Switched {
    /// The old root could not be deleted (e.g. it is the running system's): it stays as
    /// [`OUTGOING`] and the next switch or restore deletes it.
    pub kept_outgoing: bool,
}

fn exists(top: &Path, name: &str) -> Result<bool> {
    liminix_btrfs::is_subvolume(&top.join(name)).map_err(|e| BtrfsRootError::from(e).into())
}

fn rename(top: &Path, from: &str, to: &str) -> Result<()> {
    std::fs::rename(top.join(from), top.join(to))
        .map_err(AgentError::io("renaming", top.join(from)))?;
    // syncfs commits the transaction: U-Boot reads btrfs as last committed, without the
    // fsync log Linux would replay, so a power cut after a rename must find it committed.
    crate::staging::sync_fs(top)
}

/// Brings `top` from any state of a switch to `@` being the staging subvolume.
pub fn switch(top: &Path) -> Result<Switched> {
    loop {
        let state = (
            exists(top, ACTIVE)?,
            exists(top, STAGING)?,
            exists(top, OUTGOING)?,
        );
        match state {
            (true, true, false) => rename(top, ACTIVE, OUTGOING)?,
            (false, true, true) => rename(top, STAGING, ACTIVE)?,
            (true, false, true) => {
                let gone = liminix_btrfs::delete_subvolume(top, OUTGOING);
                return Ok(Switched {
                    kept_outgoing: gone.is_err(),
                });
            }
            (true, false, false) => return Ok(Switched::default()),
            (a, s, o) => {
                return Err(BtrfsRootError::SwapState {
                    dir: top.to_owned(),
                    state: format!("{ACTIVE}: {a}, {STAGING}: {s}, {OUTGOING}: {o}"),
                }
                .into())
            }
        }
    }
}

/// Deletes a leftover staging or outgoing subvolume (an abandoned install).
pub fn discard(top: &Path, name: &str) -> Result<bool> {
    if !exists(top, name)? {
        return Ok(false);
    }
    liminix_btrfs::delete_subvolume(top, name).map_err(BtrfsRootError::from)?;
    Ok(true)
}
