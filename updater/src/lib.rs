//! The on-device agent: receives signed bundles, keeps generations, activates, rolls back and
//! collects garbage. Every operation takes the device's layout ([`root::DeviceRoot`], built from
//! `--root`), so the same code runs on the router, from a recovery system, and in the tests'
//! chroots.
//!
//! - `cmd/` (in the binary): one thin module per subcommand: arguments, output.
//! - [`root`]: where everything lives on the device.
//! - [`staging`]: where data waits, verified, before it is switched in.
//! - [`verify`]: what every bundle passes first (trusted signature, board name).
//! - the strategies: [`closure`] (writable root: store, generations, activation), [`apply`] (the
//!   `apply` entry and the image write for `raw`/`ubi` boards), [`ab`] (A/B slots: install,
//!   status, mark-good, rollback), [`flashops`] (the `flashcp`, `ubi-update` and `recover`
//!   commands on the flash journal), [`levitate`] (the maintenance root in RAM and the
//!   hand-over to it), [`btrfs_root`] (installing into a btrfs `@` from a recovery system,
//!   snapshots and `restore-snapshot`).
//! - [`steplog`] logs each transaction step where a crash leaves it; [`pstore`] reads the
//!   previous boot's logs back (`boot-log`, `status`, the A/B rollback report).

pub mod ab;
pub mod apply;
pub mod btrfs_root;
pub mod closure;
pub mod error;
pub mod flashops;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod image_plan;
pub mod levitate;
pub mod multicall;
pub mod pstore;
pub mod root;
pub mod staging;
pub mod status;
pub mod steplog;
pub mod trial;
pub mod verify;

#[cfg(test)]
mod testutil;

/// Seconds since the epoch from the device clock (0 before 1970).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
