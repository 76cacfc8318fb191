//! The simulated power rail: one operation counter shared by every simulated
//! part (flash, UBI, journal) so that a single `cut_after(k)` can interrupt a
//! transaction at any program, erase, volume-table or journal write.
//!
//! The rail also says what a cut does to writes that completed but were not yet
//! synced ([`Unsynced`]): on raw NAND and NOR every completed write is on the chip,
//! but block2mtd (and any MTD driver that buffers) keeps them in RAM until
//! `sync`, and a cut loses them. Each simulated part counts the cuts it has seen
//! and drops its unsynced writes at its next use after a new one.

use std::sync::{Arc, Mutex, MutexGuard};

/// What the rail says about the operation that is about to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Power is on: perform the operation completely.
    Run,
    /// Power fails during this operation: tear it, then report a power cut.
    Tear,
    /// Power is already gone: do nothing and report a power cut.
    Dead,
}

/// What a power cut does to writes that completed but were not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unsynced {
    /// They survive: every completed write is on the medium (raw NAND and NOR).
    #[default]
    Kept,
    /// They are all lost (block2mtd: they were still in the page cache).
    Lost,
    /// The first `n` of them since the last sync survive, the rest are lost: a
    /// write-back that got part of the way, in order.
    FirstKept(usize),
}

#[derive(Debug, Default)]
struct RailState {
    ops: u64,
    budget: Option<u64>,
    dead: bool,
    cuts: u64,
    unsynced: Unsynced,
}

/// Shared, cloneable power switch and operation counter.
#[derive(Debug, Clone, Default)]
pub struct PowerRail(Arc<Mutex<RailState>>);

impl PowerRail {
    /// A rail with power on and no cut armed.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, RailState> {
        // A panic while holding the lock cannot leave the counters inconsistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Let the next `k` operations complete; operation `k + 1` is torn and it
    /// and every later operation fail until [`PowerRail::reboot`].
    pub fn cut_after(&self, k: u64) {
        self.state().budget = Some(k);
    }

    /// Cut the power now, between operations (a cut right after a command
    /// returned); every later operation fails until [`PowerRail::reboot`].
    pub fn cut_now(&self) {
        let mut s = self.state();
        if !s.dead {
            s.dead = true;
            s.cuts += 1;
        }
        s.budget = None;
    }

    /// Choose what a cut does to unsynced writes (for every part on this rail).
    pub fn set_unsynced(&self, unsynced: Unsynced) {
        self.state().unsynced = unsynced;
    }

    /// What a cut does to unsynced writes.
    pub fn unsynced(&self) -> Unsynced {
        self.state().unsynced
    }

    /// How many cuts happened on this rail; a part whose count is behind drops
    /// its unsynced writes.
    pub fn cuts(&self) -> u64 {
        self.state().cuts
    }

    /// Restore power and disarm any pending cut. Persistent state is kept.
    pub fn reboot(&self) {
        let mut s = self.state();
        s.dead = false;
        s.budget = None;
    }

    /// Number of operations that ran to completion since the rail was made.
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// Whether the power is currently cut.
    pub fn is_dead(&self) -> bool {
        self.state().dead
    }

    /// Account for one operation and say how it must behave.
    pub fn tick(&self) -> Tick {
        let mut s = self.state();
        if s.dead {
            return Tick::Dead;
        }
        match s.budget {
            Some(0) => {
                s.dead = true;
                s.cuts += 1;
                s.budget = None;
                Tick::Tear
            }
            Some(n) => {
                s.budget = Some(n - 1);
                s.ops += 1;
                Tick::Run
            }
            None => {
                s.ops += 1;
                Tick::Run
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_after_tears_op_k_plus_one_and_kills_the_rest() {
        let rail = PowerRail::new();
        rail.cut_after(2);
        assert_eq!(rail.tick(), Tick::Run);
        assert_eq!(rail.tick(), Tick::Run);
        assert_eq!(rail.tick(), Tick::Tear);
        assert_eq!(rail.tick(), Tick::Dead);
        assert!(rail.is_dead());
        rail.reboot();
        assert_eq!(rail.tick(), Tick::Run);
        assert_eq!(rail.ops(), 3);
    }

    #[test]
    fn cuts_are_counted_once_each() {
        let rail = PowerRail::new();
        rail.cut_after(0);
        assert_eq!(rail.tick(), Tick::Tear);
        rail.cut_now();
        assert_eq!(rail.cuts(), 1, "already dead: no second cut");
        rail.reboot();
        rail.cut_now();
        assert_eq!(rail.tick(), Tick::Dead);
        assert_eq!(rail.cuts(), 2);
    }

    #[test]
    fn cut_after_zero_tears_the_first_op() {
        let rail = PowerRail::new();
        rail.cut_after(0);
        assert_eq!(rail.tick(), Tick::Tear);
        assert_eq!(rail.ops(), 0);
    }
}
