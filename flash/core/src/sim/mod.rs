//! In-memory simulators of NOR/NAND flash, of a UBI device and of the journal
//! store, all driven by one [`PowerRail`](crate::power::PowerRail). Flash and UBI
//! keep what they wrote since their last `sync` so that a cut can take it back.
//!
//! Behind the `sim` feature: the crates whose tests use them enable it in their
//! `[dev-dependencies]`, so no shipped binary contains a simulator.

mod cache;
pub mod flash;
pub mod journal;
pub mod ubi;

pub use flash::{OpStats, SimFlash};
pub use journal::SimJournal;
pub use ubi::{SimUbi, VtblTear};
