//! Messages the agent sends back while it receives a bundle, one JSON object per line on stdout.
//!
//! The conversation over one ssh channel is: client → bundle header (manifest + signatures);
//! agent → `want` (or `error`); client → the wanted entries and the end marker; agent → `stored`
//! per entry, then `installed` and, with `--fast`, `activated`, or `error`. A bundle piped in from a
//! file follows the same path: the agent skips entries it did not ask for.

use serde::{Deserialize, Serialize};

/// Protocol revision; the agent announces it in `Hello`.
pub const PROTOCOL: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    Hello {
        agent_version: String,
        protocol: u32,
    },
    /// Manifest indices the device lacks, with delta bases it offers for some of them.
    Want {
        paths: Vec<u32>,
        bytes: u64,
        #[serde(default)]
        bases: Vec<DeltaBase>,
    },
    Stored {
        index: u32,
    },
    Installed {
        generation: u32,
        toplevel: String,
        link: String,
        copied_paths: u32,
        copied_bytes: u64,
    },
    Unchanged {
        generation: u32,
        toplevel: String,
    },
    Activated {
        restarted: Vec<String>,
    },
    Rebooting,
    Error {
        kind: String,
        message: String,
    },
}

/// A store path the device has (same package name, other hash) that the sender may use as a delta
/// reference for the wanted entry `index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaBase {
    pub index: u32,
    pub base: String,
}

impl AgentEvent {
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("events serialise");
        s.push('\n');
        s
    }

    pub fn from_line(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }
}
