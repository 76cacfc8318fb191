//! The on-device agent: receives signed bundles, keeps generations, activates, rolls back and
//! collects garbage. Every operation takes a device root directory (`--root`), so the same code runs
//! on the router, from a recovery system, and in the tests' chroots.

pub mod ab;
pub mod apply;
pub mod closure;
pub mod error;
pub mod flashops;
pub mod multicall;
pub mod root;
pub mod staging;
pub mod status;

#[cfg(test)]
mod testutil;
