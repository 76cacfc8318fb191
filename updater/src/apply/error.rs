//! What can stop `apply`, with the wire kind (and so the exit code) of each.

use liminix_flash::TxError;

use liminix_bundle::wire::ErrorKind;

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
    /// The exit code, the one its [`kind`](Self::kind) documents.
    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }

    /// What went wrong, as the wire protocol names it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApplyError::Board(_) => ErrorKind::Board,
            ApplyError::NoImages => ErrorKind::Usage,
            ApplyError::NotOnBoard { .. } | ApplyError::TargetMismatch { .. } => {
                ErrorKind::WrongBoard
            }
            ApplyError::Layout { .. } => ErrorKind::Layout,
            ApplyError::TooLarge { .. } => ErrorKind::NoSpace,
            ApplyError::Payload { .. } => ErrorKind::Payload,
            ApplyError::Missing(_) => ErrorKind::Incomplete,
            ApplyError::Device { .. } => ErrorKind::Device,
            ApplyError::Mounted { .. } => ErrorKind::Mounted,
            ApplyError::Tx { .. } => ErrorKind::Flash,
            ApplyError::Ab(e) => e.kind(),
        }
    }
}
