//! liminix-flash: how images get onto router flash safely.
//!
//! * [`flash::Flash`] abstracts a raw MTD partition; [`ubi::Ubi`] a UBI device.
//!   Both are implemented by the real `/dev/mtdN` and `/dev/ubiX` devices and,
//!   with the `sim` feature (tests only), by in-memory simulators (`sim`) with
//!   fault and power-cut injection on one power rail (`power`).
//! * [`raw`] writes a raw partition incrementally (flashcp/nandwrite
//!   semantics, compare first, skip bad blocks, verify).
//! * [`ubi_update`] updates a UBI volume by staging + atomic rename, or in place.
//! * [`journal`] and [`txn`] make each image write a transaction that
//!   [`txn::recover`] completes or rolls back after a crash. A write is done
//!   only once the device has been synced ([`Flash::sync`], [`Ubi::sync`]):
//!   the strategies sync what they wrote, and no journal record is cleared
//!   before the target is synced.
//! * [`mounts`] tells whether a UBI volume is mounted, [`in_use`] whether a raw
//!   partition (or one sharing its bytes) is.
//!
//! The strategies only see the traits, so the code proven against the
//! simulator is the code that runs on the device.

pub mod flash;
pub mod image;
pub mod in_use;
pub mod journal;
pub mod mounts;
pub mod mtd_backend;
#[cfg(feature = "sim")]
pub mod power;
pub mod progress;
pub mod raw;
#[cfg(feature = "sim")]
pub mod sim;
pub mod txn;
pub mod ubi;
pub mod ubi_backend;
pub mod ubi_update;

pub use flash::{erase_range, Flash, FlashError, Geometry};
pub use image::{FileImage, ImageSource, MemImage};
pub use journal::{FileJournal, JournalStore, Phase, Strategy, TxRecord};
pub use mtd_backend::MtdFlash;
#[cfg(feature = "sim")]
pub use power::{PowerRail, Unsynced};
pub use progress::{NoProgress, Progress, Stage};
pub use raw::{scan_raw, write_raw, RawError, RawOptions, RawReport, RawScan};
#[cfg(feature = "sim")]
pub use sim::{SimFlash, SimJournal, SimUbi};
pub use txn::{recover, update_raw, update_ubi, Outcome, Recovered, RecoveryEnv, TxError};
pub use ubi::{Ubi, UbiError, UbiVolume, VolKind, VolumeUpdate};
pub use ubi_backend::UbiDev;
pub use ubi_update::UbiOptions;
