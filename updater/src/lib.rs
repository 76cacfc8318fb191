//! The on-device agent: receives signed bundles, keeps generations, activates, rolls back and
//! collects garbage. Every operation takes a device root directory (`--root`), so the same code runs
//! on the router, from a recovery system, and in the tests' chroots.

pub mod ab;
pub mod activate;
pub mod apply;
pub mod error;
pub mod flashops;
pub mod gc;
pub mod generations;
pub mod multicall;
pub mod receive;
pub mod rollback;
pub mod root;
pub mod status;
pub mod store;

#[cfg(test)]
mod testutil;
