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
    #[error("image {image} was packed for target {bundle} but this device's board definition puts it at {device}")]
    TargetMismatch {
        image: String,
        bundle: String,
        device: String,
    },
    #[error("target {target} does not match the board definition: the device has {size:#x} bytes in {erase_size:#x}-byte blocks, the board definition says {want_size:#x} in {want_erase_size:#x}")]
    Geometry {
        target: String,
        size: u64,
        erase_size: u64,
        want_size: u64,
        want_erase_size: u64,
    },
    #[error(
        "target {target} does not match the board definition: LEB size {leb}, the board definition says {want}"
    )]
    LebSize { target: String, leb: u64, want: u64 },
    #[error("image {0:?} is not an A/B slot's: A/B slots take a `kernel` and optionally a `rootfs` image")]
    NotSlotImage(String),
    #[error("image {image} does not fit {target}: {source}")]
    TooLarge {
        image: String,
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("image {image} failed verification: {source}")]
    Payload {
        image: String,
        #[source]
        source: Box<crate::error::PayloadError>,
    },
    #[error("the bundle stream ended without image {0}")]
    Missing(String),
    #[error("cannot open {target}: {source}")]
    Device {
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("UBI on mtd:{partition}: no UBI device is attached to mtd{mtd} (ubiattach it first)")]
    NotAttached { partition: String, mtd: u32 },
    #[error("UBI volume {volume} is mounted at {at}: an in-place update would pull it from under the system")]
    Mounted { volume: String, at: String },
    #[error("refusing to write {target}: {}", crate::flashops::in_use_words(used))]
    InUse {
        target: String,
        used: liminix_flash::in_use::InUse,
    },
    #[error("writing image {image} to {target}: {source}")]
    Tx {
        image: String,
        target: String,
        #[source]
        source: TxError,
    },
    #[error(transparent)]
    Ab(#[from] crate::ab::AbError),
    #[error("image {image} is a patch against contents {target} does not hold: {source}; send the whole image (nothing was written)")]
    BaseMismatch {
        image: String,
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("image {image} is a patch, but {target} has no contents to patch; send the whole image (nothing was written)")]
    NoBase { image: String, target: String },
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
            ApplyError::Geometry { .. }
            | ApplyError::LebSize { .. }
            | ApplyError::NotSlotImage(_) => ErrorKind::Layout,
            ApplyError::TooLarge { .. } => ErrorKind::NoSpace,
            ApplyError::Payload { .. } => ErrorKind::Payload,
            ApplyError::Missing(_) => ErrorKind::Incomplete,
            ApplyError::Device { .. } | ApplyError::NotAttached { .. } => ErrorKind::Device,
            ApplyError::Mounted { .. } | ApplyError::InUse { .. } => ErrorKind::Mounted,
            ApplyError::Tx { .. } => ErrorKind::Flash,
            ApplyError::Ab(e) => e.kind(),
            ApplyError::BaseMismatch { .. } | ApplyError::NoBase { .. } => ErrorKind::BaseMismatch,
        }
    }
}
