//! One module per subcommand.

pub mod apply;
pub mod flashcp;
pub mod gc;
pub mod mark_good;
pub mod receive;
pub mod recover;
pub mod rollback;
pub mod status;
pub mod ubi_update;

/// Seconds since the epoch from the device clock.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
