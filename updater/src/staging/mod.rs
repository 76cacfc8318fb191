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

pub mod images;
pub mod journal;

use std::path::Path;

use crate::error::{AgentError, Result};

/// Empties the staging directory `dir` and creates it again: what an interrupted run left
/// there was never verified.
pub fn reset(dir: &Path) -> Result<()> {
    liminix_bundle::nar::remove_tree(dir).map_err(AgentError::io("clearing staging", dir))?;
    std::fs::create_dir(dir).map_err(AgentError::io("creating staging", dir))
}
