//! How an update fails, and the exit code and kind each failure gives `update.sh`.

use std::io;

use liminix_bundle::wire::{AgentEvent, ErrorKind};

use crate::agents::AgentsError;
use crate::bootstrap::ProbeError;
use crate::pack::PackError;

/// Exit codes of `update.sh`: the agent's, and one of its own.
pub mod exit {
    pub use liminix_bundle::wire::exit::*;
    /// The device could not be reached over ssh, or has no agent.
    pub const UNREACHABLE: i32 = 8;
    /// The device needs an agent, and none of those carried is for its CPU.
    pub const UNSUPPORTED_CPU: i32 = 9;
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error(transparent)]
    Bundle(#[from] PackError),
    #[error("cannot start {cmd:?}: {source}")]
    Spawn { cmd: String, source: io::Error },
    #[error("{host} has no `{agent}` on its PATH (is liminix-agent in the running system? try --agent PATH)")]
    NoAgent { host: String, agent: String },
    #[error("{host} has no agent this update can use, and this update.sh carries none (give --agents-dir, or --agent PATH)")]
    NoUsableAgent { host: String },
    #[error("{host} needs an agent, and this update.sh carries none for its CPU ({device}; it carries {carried}): nothing was sent")]
    UnsupportedCpu {
        host: String,
        device: String,
        carried: String,
    },
    #[error(
        "{host} has {free} bytes free in /run, the agent to send has {need}: nothing was sent"
    )]
    NoRoom { host: String, need: u64, free: u64 },
    #[error("{host} cannot receive an agent: {why}; nothing was sent")]
    CannotReceive { host: String, why: String },
    #[error("receiving the agent on {host} failed ({kind}): {message}")]
    Bootstrap {
        host: String,
        kind: String,
        message: String,
    },
    #[error(transparent)]
    Agents(#[from] AgentsError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("ssh to {host} failed before the agent answered (exit status {status})")]
    Ssh { host: String, status: String },
    #[error("{host} ended the session without saying the generation was installed: nothing is known to have changed; run `update.sh` again")]
    NoVerdict { host: String },
    #[error("the device refused the update ({kind}): {message}")]
    Agent { kind: ErrorKind, message: String },
    #[error("talking to the agent: {source}: {line:?}")]
    Garbled {
        line: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("talking to the agent: expected {expected}, got {got:?}")]
    Unexpected {
        expected: &'static str,
        got: Box<AgentEvent>,
    },
    #[error("--fast restarts the services of a new generation; an image bundle is written to flash and the device rebooted (leave out --fast, or give --no-reboot)")]
    ImageFast,
    #[error("{host} did not answer from its maintenance root within {secs} s after levitate: the flash was not written; log in and run `reboot`, or power-cycle it, to boot the old firmware")]
    NoMaintenance { host: String, secs: u64 },
    #[error("bundle files hold no delta entries (entry {0} is one)")]
    DeltaInBundle(u32),
    #[error("sending the bundle: {0}")]
    Io(#[from] io::Error),
}

impl UpdateError {
    /// Exit code of `update.sh`: the agent's where the agent decided (docs/errors.md).
    pub fn exit_code(&self) -> i32 {
        match self {
            UpdateError::Agent { kind, .. } => kind.exit_code(),
            UpdateError::Bundle(_) => exit::VERIFY,
            UpdateError::NoAgent { .. }
            | UpdateError::NoUsableAgent { .. }
            | UpdateError::Ssh { .. } => exit::UNREACHABLE,
            UpdateError::UnsupportedCpu { .. } => exit::UNSUPPORTED_CPU,
            UpdateError::NoRoom { .. } => exit::NO_SPACE,
            UpdateError::ImageFast => exit::USAGE,
            UpdateError::Bootstrap { kind, .. } if kind == "verify" || kind == "incomplete" => {
                exit::VERIFY
            }
            _ => exit::FAILURE,
        }
    }

    /// The kind `update.sh --json` reports: the agent's, or one of the bootstrap's own.
    pub fn kind(&self) -> Option<&str> {
        Some(match self {
            UpdateError::Agent { kind, .. } => kind.as_str(),
            UpdateError::UnsupportedCpu { .. } => "unsupported_cpu",
            UpdateError::NoRoom { .. } => "no_space",
            UpdateError::NoAgent { .. } | UpdateError::NoUsableAgent { .. } => "no_agent",
            UpdateError::CannotReceive { .. } | UpdateError::Bootstrap { .. } => "bootstrap",
            UpdateError::NoMaintenance { .. } => "no_maintenance",
            _ => return None,
        })
    }
}
