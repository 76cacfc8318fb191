//! Agent errors, the wire error kind of each and, through it, the exit code (docs/errors.md).

use std::path::PathBuf;

use liminix_bundle::nar::NarError;
use liminix_bundle::storepath::StorePathError;
use liminix_bundle::stream::StreamError;

/// Exit codes are part of the agent's interface: `update.sh` and scripts act on them. They live
/// with the wire's error kinds so that agent and client share one table.
pub use liminix_bundle::wire::exit;
pub use liminix_bundle::wire::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bundle stream: {0}")]
    Stream(#[from] StreamError),
    #[error("no trusted signature: the bundle is signed by {signers} but this device trusts only the keys in {dir} ({trusted} key(s))")]
    Untrusted {
        signers: String,
        dir: PathBuf,
        trusted: usize,
    },
    #[error("bundle is for board {bundle:?} but this device is {device:?} ({file})")]
    WrongBoard {
        bundle: String,
        device: String,
        file: PathBuf,
    },
    #[error("security epoch {bundle} is lower than {installed}, the highest this device has installed: refusing a downgrade")]
    Epoch { bundle: u64, installed: u64 },
    #[error("not enough space in {dir}: the update needs {needed} bytes, {available} are free")]
    NoSpace {
        dir: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error("store path {path} failed verification: {source}")]
    Payload {
        path: String,
        #[source]
        source: Box<PayloadError>,
    },
    #[error("the bundle stream ended without {missing} wanted store path(s), e.g. {example}")]
    Incomplete { missing: usize, example: String },
    #[error("another liminix-agent is working on {0} (lock held)")]
    Busy(PathBuf),
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("activation failed: {0}")]
    Activation(#[from] ActivationError),
    #[error(transparent)]
    Key(#[from] liminix_bundle::sign::KeyError),
    #[error(transparent)]
    Flash(#[from] crate::flashops::FlashOpError),
    #[error(transparent)]
    Apply(#[from] crate::apply::ApplyError),
    #[error(transparent)]
    Ab(#[from] crate::ab::AbError),
}

/// A command that makes no sense on this device or with this bundle.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("--fast activates the running system; with --root use --no-reboot")]
    FastWithRoot,
    #[error("this bundle carries only flash images: install it with `liminix-agent apply`")]
    ImagesOnly,
    #[error("A/B boards roll back between slots; no generation number is taken")]
    AbGeneration,
}

/// Why a store path's NAR or a flash image is not what the signed manifest promised.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("zstd: {0}")]
    Zstd(#[source] ruzstd::decoding::errors::FrameDecoderError),
    #[error(transparent)]
    Nar(#[from] NarError),
    #[error("reading entry: {0}")]
    Read(#[source] std::io::Error),
    #[error("trailing data after the NAR")]
    Trailing,
    #[error("delta against {0}, which this agent did not offer")]
    NotOffered(String),
    #[error(transparent)]
    BaseName(#[from] StorePathError),
    #[error("reading delta base {base}: {source}")]
    Base {
        base: String,
        #[source]
        source: NarError,
    },
    #[error("delta: {0}")]
    Delta(#[source] std::io::Error),
    #[error("NAR sha256 {} ({got_size} bytes) does not match the signed manifest's {want_sha256} ({want_size} bytes)", hex::encode(got_sha256))]
    NarMismatch {
        got_sha256: [u8; 32],
        got_size: u64,
        want_sha256: String,
        want_size: u64,
    },
    #[error("images are never sent as deltas")]
    ImageDelta,
    #[error("{got_size} bytes with sha256 {}, the signed manifest says {want_size} bytes with {want_sha256}", hex::encode(got_sha256))]
    ImageMismatch {
        got_sha256: [u8; 32],
        got_size: u64,
        want_sha256: String,
        want_size: u64,
    },
}

/// The device's generations or store are not in the state an operation needs.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no previous generation to roll back to (see `liminix-agent status`)")]
    NoPrevious,
    #[error("no generation is recorded as current: refusing to guess what is garbage (install a bundle first)")]
    NoCurrent,
    #[error("generation {0} is already current")]
    AlreadyCurrent(u32),
    #[error("there is no generation {number}")]
    NoGeneration {
        number: u32,
        #[source]
        source: Box<AgentError>,
    },
    #[error("{path}: {source}")]
    GenerationInfo {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{list} names {entry:?}: {source}")]
    BadListEntry {
        list: String,
        entry: String,
        #[source]
        source: StorePathError,
    },
    #[error("generation {generation} is incomplete: {path} is missing from the store")]
    MissingPath { generation: u32, path: String },
    #[error("etc/nix-store-paths names {0}, which is neither in the bundle nor on the device")]
    Unlisted(String),
    #[error("the toplevel's {what} is not a file in the store (resolves to {resolved})")]
    NotInStore {
        what: &'static str,
        resolved: PathBuf,
    },
    #[error("no free configuration link name in {0}")]
    NoLinkName(PathBuf),
    #[error("this device has no A/B slots ({0} is missing)")]
    NotAb(PathBuf),
}

/// A command of the activation or the reboot failed.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed ({status})")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
    },
}

impl AgentError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| AgentError::Io { what, path, source }
    }

    /// The exit code, the one its [`kind`](Self::kind) documents.
    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }

    /// What went wrong, as `--json` output and the wire protocol name it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AgentError::Io { .. } => ErrorKind::Io,
            AgentError::Stream(_) => ErrorKind::Corrupt,
            AgentError::Untrusted { .. } => ErrorKind::Untrusted,
            AgentError::WrongBoard { .. } => ErrorKind::WrongBoard,
            AgentError::Epoch { .. } => ErrorKind::Epoch,
            AgentError::NoSpace { .. } => ErrorKind::NoSpace,
            AgentError::Payload { .. } => ErrorKind::Payload,
            AgentError::Incomplete { .. } => ErrorKind::Incomplete,
            AgentError::Busy(_) => ErrorKind::Busy,
            AgentError::Usage(_) => ErrorKind::Usage,
            AgentError::State(_) => ErrorKind::State,
            AgentError::Activation(_) => ErrorKind::Activation,
            AgentError::Key(_) => ErrorKind::Key,
            AgentError::Flash(e) => e.kind(),
            AgentError::Apply(e) => e.kind(),
            AgentError::Ab(e) => e.kind(),
        }
    }
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;
