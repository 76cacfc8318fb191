//! What can stop `apply`, with the exit code each maps to.

use liminix_flash::TxError;

use crate::error::exit;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Board(#[from] liminix_boards::BoardError),
    #[error("the bundle carries no flash images (install closures with `liminix-agent receive`)")]
    NoImages,
    #[error("image {image:?} is not an image of board {board}")]
    NotOnBoard { image: String, board: String },
    #[error("image {image} was packed for target {bundle} but this device's board file puts it at {device}")]
    TargetMismatch {
        image: String,
        bundle: String,
        device: String,
    },
    #[error("target {target} does not match the board file: {detail}")]
    Layout { target: String, detail: String },
    #[error("image {image} does not fit {target}: {detail}")]
    TooLarge {
        image: String,
        target: String,
        detail: String,
    },
    #[error("image {image} failed verification: {detail}")]
    Payload { image: String, detail: String },
    #[error("the bundle stream ended without image {0}")]
    Missing(String),
    #[error("cannot open {target}: {detail}")]
    Device { target: String, detail: String },
    #[error("UBI volume {volume} is mounted at {at}: an in-place update would pull it from under the system")]
    Mounted { volume: String, at: String },
    #[error("writing image {image} to {target}: {source}")]
    Tx {
        image: String,
        target: String,
        #[source]
        source: TxError,
    },
    #[error(transparent)]
    Ab(#[from] crate::ab::AbError),
}

impl ApplyError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ApplyError::NoImages => exit::USAGE,
            ApplyError::Board(_)
            | ApplyError::NotOnBoard { .. }
            | ApplyError::TargetMismatch { .. }
            | ApplyError::Layout { .. }
            | ApplyError::Mounted { .. } => exit::REFUSED,
            ApplyError::TooLarge { .. } => exit::NO_SPACE,
            ApplyError::Payload { .. } | ApplyError::Missing(_) => exit::VERIFY,
            ApplyError::Ab(crate::ab::AbError::WrongBoard { .. })
            | ApplyError::Ab(crate::ab::AbError::Refused(_))
            | ApplyError::Ab(crate::ab::AbError::Layout(_)) => exit::REFUSED,
            ApplyError::Ab(crate::ab::AbError::Verify(_)) => exit::VERIFY,
            ApplyError::Device { .. } | ApplyError::Tx { .. } | ApplyError::Ab(_) => exit::FAILURE,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ApplyError::Board(_) => "board",
            ApplyError::NoImages => "usage",
            ApplyError::NotOnBoard { .. } | ApplyError::TargetMismatch { .. } => "wrong_board",
            ApplyError::Layout { .. } => "layout",
            ApplyError::TooLarge { .. } => "no_space",
            ApplyError::Payload { .. } => "payload",
            ApplyError::Missing(_) => "incomplete",
            ApplyError::Device { .. } => "device",
            ApplyError::Mounted { .. } => "mounted",
            ApplyError::Tx { .. } => "flash",
            ApplyError::Ab(_) => "ab",
        }
    }
}
