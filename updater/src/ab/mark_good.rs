//! `mark-good`: confirming the running slot once its health check passes, so the boot loader
//! keeps it.

use std::time::Duration;

use serde::Serialize;

use super::devices::open_flow;
use super::health;
use super::slot::{Slot, SlotLayout};
use super::status::{booted_slot, check_boot, AbStatus};
use super::AbError;
use crate::root::DeviceRoot;

/// What `mark-good` did.
#[derive(Debug, Clone, Serialize)]
pub struct MarkGood {
    pub slot: Slot,
    /// The slot was already the committed one (nothing written).
    pub already_good: bool,
    pub status: AbStatus,
}

/// Confirms the running slot once the health check passes within `deadline` (default
/// from the board, else 120 s). On failure nothing is written: the next reset falls
/// back.
pub fn mark_good(
    root: &DeviceRoot,
    board: &SlotLayout,
    deadline: Option<Duration>,
) -> Result<MarkGood, AbError> {
    let slot = booted_slot(root, board)?;
    let state = open_flow(root, board)?.state()?;
    let on_trial = state.trying.is_some_and(|(s, _)| s == slot);
    let already_good = state.committed == slot && !on_trial;
    if !already_good {
        let d = deadline
            .or(board.health.deadline_secs.map(Duration::from_secs))
            .unwrap_or(health::DEFAULT_DEADLINE);
        health::wait_healthy(&board.health, d)?;
        open_flow(root, board)?.mark_good(slot)?;
        crate::steplog::log(root, &format!("ab: slot {slot} marked good"));
    }
    Ok(MarkGood {
        slot,
        already_good,
        status: check_boot(root, board)?,
    })
}
