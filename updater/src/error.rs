//! Agent errors and the exit codes they map to (documented in docs/errors.md).

use std::path::PathBuf;

use liminix_bundle::stream::StreamError;

/// Exit codes are part of the agent's interface: `update.sh` and scripts act on them.
pub mod exit {
    pub const OK: i32 = 0;
    /// I/O or other unexpected failure.
    pub const FAILURE: i32 = 1;
    /// Bad command line.
    pub const USAGE: i32 = 2;
    /// The bundle failed verification: signature, hash, corrupt or truncated stream, unsafe path.
    pub const VERIFY: i32 = 3;
    /// The bundle is authentic but refused: wrong board, lower security epoch.
    pub const REFUSED: i32 = 4;
    /// Not enough free space for the update.
    pub const NO_SPACE: i32 = 5;
    /// Another agent holds the store lock.
    pub const BUSY: i32 = 6;
    /// Installed, but activating the new generation (`--fast`) or rebooting failed.
    pub const ACTIVATION: i32 = 7;
}

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
    #[error("store path {path} failed verification: {detail}")]
    Payload { path: String, detail: String },
    #[error("the bundle stream ended without {missing} wanted store path(s), e.g. {example}")]
    Incomplete { missing: usize, example: String },
    #[error("another liminix-agent is working on {0} (lock held)")]
    Busy(PathBuf),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    State(String),
    #[error("activation failed: {0}")]
    Activation(String),
    #[error(transparent)]
    Key(#[from] liminix_bundle::sign::KeyError),
    #[error(transparent)]
    Flash(#[from] crate::flashops::FlashOpError),
    #[error(transparent)]
    Apply(#[from] crate::apply::ApplyError),
}

impl AgentError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| AgentError::Io { what, path, source }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            AgentError::Stream(_) | AgentError::Untrusted { .. } | AgentError::Payload { .. } => {
                exit::VERIFY
            }
            AgentError::Incomplete { .. } => exit::VERIFY,
            AgentError::WrongBoard { .. } | AgentError::Epoch { .. } => exit::REFUSED,
            AgentError::NoSpace { .. } => exit::NO_SPACE,
            AgentError::Busy(_) => exit::BUSY,
            AgentError::Usage(_) => exit::USAGE,
            AgentError::Activation(_) => exit::ACTIVATION,
            AgentError::Io { .. } | AgentError::State(_) | AgentError::Key(_) => exit::FAILURE,
            AgentError::Flash(e) => e.exit_code(),
            AgentError::Apply(e) => e.exit_code(),
        }
    }

    /// Short machine-readable name for `--json` output and the wire protocol.
    pub fn kind(&self) -> &'static str {
        match self {
            AgentError::Io { .. } => "io",
            AgentError::Stream(_) => "corrupt",
            AgentError::Untrusted { .. } => "untrusted",
            AgentError::WrongBoard { .. } => "wrong_board",
            AgentError::Epoch { .. } => "epoch",
            AgentError::NoSpace { .. } => "no_space",
            AgentError::Payload { .. } => "payload",
            AgentError::Incomplete { .. } => "incomplete",
            AgentError::Busy(_) => "busy",
            AgentError::Usage(_) => "usage",
            AgentError::State(_) => "state",
            AgentError::Activation(_) => "activation",
            AgentError::Key(_) => "key",
            AgentError::Flash(e) => e.kind(),
            AgentError::Apply(e) => e.kind(),
        }
    }
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;
