//! Errors of the agent's flash commands and the exit codes they map to.

use std::io;
use std::path::PathBuf;

use liminix_flash::journal::JournalError;
use liminix_flash::raw::RawError;
use liminix_flash::txn::TxError;
use liminix_flash::ubi_update::PlanError;

use crate::error::exit;

/// Failure of `flashcp`, `ubi-update` or `recover`.
#[derive(Debug, thiserror::Error)]
pub enum FlashOpError {
    /// The MTD device spec does not name a device, or it cannot be opened.
    #[error("flash device {spec:?}: {source}")]
    Mtd {
        spec: String,
        #[source]
        source: liminix_mtd::MtdError,
    },
    /// The UBI device or volume cannot be found or opened.
    #[error("UBI {spec:?}: {source}")]
    UbiDev {
        spec: String,
        #[source]
        source: liminix_ubi::UbiError,
    },
    /// A UBI query failed before the transaction started.
    #[error("UBI {spec:?}: {source}")]
    Ubi {
        spec: String,
        #[source]
        source: liminix_flash::UbiError,
    },
    /// A volume spec that is none of the accepted forms.
    #[error("UBI volume {0:?} not understood: use ubiN:NAME, ubi:NAME, /dev/ubiN_M or ubiN_M")]
    VolumeSpec(String),
    /// The image file cannot be read.
    #[error("image {path}: {source}")]
    Image {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The journal directory, its lock or the staging area failed.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another agent is writing flash (journal lock held).
    #[error("another liminix-agent holds the flash journal lock {0}")]
    Busy(PathBuf),
    /// In-place update of a volume that is in use.
    #[error("refusing the in-place update of UBI volume {volume:?}: it is mounted on {at}; update it while it is not in use (e.g. after `levitate`)")]
    Mounted { volume: String, at: String },
    /// An earlier transaction on the same target could not be recovered.
    #[error("an earlier transaction on {key} is still pending and could not be recovered: {reason}; see `liminix-agent recover`")]
    Unrecovered { key: String, reason: String },
    /// `recover` left records it could not settle.
    #[error(
        "{0} journalled transaction(s) remain unrecovered (torn or failing); see the lines above"
    )]
    Remaining(usize),
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// The journal cannot be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The transaction failed.
    #[error(transparent)]
    Tx(#[from] TxError),
}

impl FlashOpError {
    /// The agent exit code (see [`crate::error::exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            FlashOpError::Usage(_) | FlashOpError::VolumeSpec(_) => exit::USAGE,
            FlashOpError::Busy(_) => exit::BUSY,
            FlashOpError::Mounted { .. } => exit::REFUSED,
            FlashOpError::Tx(e) => tx_exit_code(e),
            _ => exit::FAILURE,
        }
    }

    /// Short machine-readable name for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self.exit_code() {
            exit::USAGE => "usage",
            exit::BUSY => "busy",
            exit::REFUSED => "mounted",
            exit::NO_SPACE => "no_space",
            exit::VERIFY => "verify",
            _ => "flash",
        }
    }
}

fn tx_exit_code(e: &TxError) -> i32 {
    match e {
        TxError::Raw(RawError::TooLarge { .. } | RawError::NoSpace { .. })
        | TxError::Plan(PlanError::TooLarge { .. } | PlanError::NoSpace { .. }) => exit::NO_SPACE,
        TxError::Raw(RawError::Verify { .. } | RawError::Digest { .. })
        | TxError::Verify { .. } => exit::VERIFY,
        TxError::Pending(_) => exit::BUSY,
        _ => exit::FAILURE,
    }
}

pub(crate) fn io_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> FlashOpError {
    let path = path.into();
    move |source| FlashOpError::Io { what, path, source }
}
