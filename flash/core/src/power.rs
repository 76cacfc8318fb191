//! The simulated power rail: one operation counter shared by every simulated
//! part (flash, UBI, journal) so that a single `cut_after(k)` can interrupt a
//! transaction at any program, erase, volume-table or journal write.

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

#[derive(Debug, Default)]
struct RailState {
    ops: u64,
    budget: Option<u64>,
    dead: bool,
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
    fn cut_after_zero_tears_the_first_op() {
        let rail = PowerRail::new();
        rail.cut_after(0);
        assert_eq!(rail.tick(), Tick::Tear);
        assert_eq!(rail.ops(), 0);
    }
}
