//! Explicit rollback between the slots.

use super::devices::open_flow;
use super::record;
use super::slot::{Slot, SlotLayout};
use super::status::booted_slot;
use super::{AbError, RefusedError};
use crate::root::DeviceRoot;

/// Explicit rollback: cancels a pending trial, or else makes the other slot the
/// committed one (refused if it is marked failed, unless `force`).
pub fn rollback(
    root: &DeviceRoot,
    board: &SlotLayout,
    force: bool,
) -> Result<(Slot, Slot), AbError> {
    let booted = booted_slot(root, board)?;
    let mut flow = open_flow(root, board)?;
    let state = flow.state()?;
    let pending_trial = state
        .trying
        .is_some_and(|(s, left)| s != booted && left > 0);
    let to = if pending_trial {
        booted
    } else {
        booted.other()
    };
    if to != booted && state.is_failed(to) && !force {
        return Err(RefusedError::Failed(to).into());
    }
    flow.set_committed(to)?;
    record::clear_pending(root)?;
    crate::steplog::log(root, &format!("ab: rollback, slot {to} committed"));
    Ok((booted, to))
}
