//! Errors of the agent's flash commands, with the wire kind (and so the exit code) of each.

use std::io;
use std::path::PathBuf;

use liminix_flash::in_use::{InUse, InUseError};
use liminix_flash::journal::JournalError;
use liminix_flash::raw::RawError;
use liminix_flash::txn::TxError;
use liminix_flash::ubi_update::PlanError;

use liminix_bundle::wire::ErrorKind;

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
    /// A raw partition the running system reads: it, or a partition sharing its bytes, is mounted.
    #[error("refusing to write {device}: {}", in_use_words(used))]
    InUse { device: String, used: InUse },
    /// The mount table or sysfs could not be read, so the partition cannot be shown unused.
    #[error(transparent)]
    InUseCheck(#[from] InUseError),
    /// An earlier transaction on the same target could not be recovered.
    #[error("an earlier transaction on {key} is still pending and could not be recovered: {reason}; see `liminix-agent recover`")]
    Unrecovered { key: String, reason: String },
    /// `recover` left records it could not settle.
    #[error(
        "{0} journalled transaction(s) remain unrecovered (torn or failing); see the lines above"
    )]
    Remaining(usize),
    /// The journal cannot be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The transaction failed.
    #[error(transparent)]
    Tx(#[from] TxError),
}

impl FlashOpError {
    /// The agent exit code, the one its [`kind`](Self::kind) documents.
    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }

    /// What went wrong, as `--json` output and the wire protocol name it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            FlashOpError::VolumeSpec(_) => ErrorKind::Usage,
            FlashOpError::Busy(_) => ErrorKind::Busy,
            FlashOpError::Mounted { .. } | FlashOpError::InUse { .. } => ErrorKind::Mounted,
            FlashOpError::Tx(e) => tx_kind(e),
            FlashOpError::Mtd { .. } | FlashOpError::UbiDev { .. } => ErrorKind::Device,
            FlashOpError::Image { .. } | FlashOpError::Io { .. } | FlashOpError::InUseCheck(_) => {
                ErrorKind::Io
            }
            FlashOpError::Ubi { .. }
            | FlashOpError::Unrecovered { .. }
            | FlashOpError::Remaining(_)
            | FlashOpError::Journal(_) => ErrorKind::Flash,
        }
    }
}

fn tx_kind(e: &TxError) -> ErrorKind {
    match e {
        TxError::Raw(RawError::TooLarge { .. } | RawError::NoSpace { .. })
        | TxError::Plan(PlanError::TooLarge { .. } | PlanError::NoSpace { .. }) => {
            ErrorKind::NoSpace
        }
        TxError::Raw(RawError::Verify { .. } | RawError::Digest { .. })
        | TxError::Verify { .. } => ErrorKind::Verify,
        TxError::Pending(_) => ErrorKind::Busy,
        _ => ErrorKind::Flash,
    }
}

/// Why a partition [`InUse`] must not be written, and the ways that work: the words of
/// both `flashcp`'s and `apply`'s refusal.
pub fn in_use_words(u: &InUse) -> String {
    let whose = format!("mtd{} ({})", u.mtd, u.mtd_name);
    let assumed = match u.assumed {
        true => ", taken to be on the same chip as sysfs does not tell",
        false => "",
    };
    format!(
        "{} from {whose}{assumed} is mounted on {}, and writing would pull the running \
         system's files from under it; run `liminix-agent levitate`, then flash from the \
         maintenance system it starts (`flashcp IMAGE mtd:NAME`), or update with \
         `update.sh root@router`, which does both",
        u.source, u.mount_point
    )
}

pub(crate) fn io_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> FlashOpError {
    let path = path.into();
    move |source| FlashOpError::Io { what, path, source }
}
