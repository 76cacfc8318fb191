//! The agent's flash commands: `flashcp` (raw partitions), `ubi-update` (UBI
//! volumes) and `recover`, on top of `liminix-flash`'s journalled
//! transactions.
//!
//! This layer owns what the device-independent library leaves open: which
//! device a user's spec names, where the journal lives ([`journal_dir`]),
//! keeping the image where recovery finds it ([`crate::staging::journal`]), refusing an
//! in-place update of a mounted volume and the write of a raw partition the running
//! system reads, progress output ([`progress`]), and
//! the mtd-utils-compatible `flashcp` command line ([`flashcp_cli`]).

mod error;
pub mod flashcp_cli;
pub mod journal_dir;
pub mod progress;
pub mod raw;
pub mod recovery;
pub mod ubi;

pub(crate) use error::io_err;
pub use error::{in_use_words, FlashOpError};
pub use flashcp_cli::flashcp_main;
