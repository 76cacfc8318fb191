//! Progress reporting, so the agent can draw a bar (`-v`) or log JSON.

/// What a strategy is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Hashing the image source.
    Hashing,
    /// Hashing the image while comparing it with flash (no writes yet).
    Comparing,
    /// Writing changed blocks / volume data.
    Writing,
    /// Reading back and verifying.
    Verifying,
}

/// Receives progress events. Every method has a no-op default.
pub trait Progress {
    /// A stage starts; `total` is its size in bytes.
    fn begin(&mut self, _stage: Stage, _total: u64) {}
    /// `done` bytes of the current stage are finished (cumulative).
    fn advance(&mut self, _done: u64) {}
    /// A noteworthy event (bad block skipped, block retired, ...).
    fn note(&mut self, _msg: &str) {}
}

/// Ignores all progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
