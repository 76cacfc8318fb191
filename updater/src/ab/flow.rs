//! The `BootFlow` trait: what the A/B strategy asks of a boot loader, whatever keeps the
//! state (a Zyxel bootconfig byte pair, or variables in a U-Boot environment).
//!
//! Every method is one read and at most one write of the boot-loader state, and writes
//! nothing when the state already says what is asked, so a repeated call after a power
//! cut is harmless and an unneeded write never risks the state.

use serde::Serialize;

use super::slot::Slot;
use super::AbError;

/// What the boot loader will do, as read from its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FlowState {
    /// The slot booted when no trial is pending (the last confirmed one).
    pub committed: Slot,
    /// The slot the next reset tries, with the boots it has left.
    pub trying: Option<(Slot, u8)>,
    /// Slots the state marks as failed (a trial that was not confirmed).
    pub failed: [bool; 2],
}

impl FlowState {
    /// The slot the next reset boots.
    pub fn next_boot(&self) -> Slot {
        match self.trying {
            Some((s, left)) if left > 0 => s,
            _ => self.committed,
        }
    }

    /// Whether `slot` is marked failed.
    pub fn is_failed(&self, slot: Slot) -> bool {
        self.failed[slot.index()]
    }
}

/// One boot-loader protocol for two slots with try-once (or try-N) boots.
pub trait BootFlow {
    /// Short name for status output (`zyxel-bootconfig`, `uboot-env`).
    fn name(&self) -> &'static str;

    /// Reads the current state.
    fn state(&mut self) -> Result<FlowState, AbError>;

    /// Before `slot` is overwritten: make sure no reset boots it. Refuses when `slot` is
    /// the committed one (there would be nothing to fall back to).
    fn prepare_write(&mut self, slot: Slot) -> Result<(), AbError>;

    /// After `slot` was written and verified: the next reset tries it, and a reset after
    /// an unconfirmed trial returns to the committed slot.
    fn try_next(&mut self, slot: Slot) -> Result<(), AbError>;

    /// The running `slot` passed its health check: it becomes the committed slot.
    fn mark_good(&mut self, slot: Slot) -> Result<(), AbError>;

    /// `slot` failed: never boot it again until it is rewritten.
    fn mark_bad(&mut self, slot: Slot) -> Result<(), AbError>;

    /// Explicit rollback: `slot` becomes the committed slot and any trial is cancelled.
    fn set_committed(&mut self, slot: Slot) -> Result<(), AbError>;
}
