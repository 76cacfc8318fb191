//! Messages the agent sends back while it receives a bundle, one JSON object per line on stdout.
//!
//! The conversation over one ssh channel is: agent → `hello`; client → bundle header (manifest +
//! signatures); agent → `want` (or `error`); client → the wanted entries and the end marker;
//! agent → `installed` (or `unchanged`), then `activated` with `--fast` or `rebooting`, or
//! `error` at any point. A bundle piped in from a file follows the same path: the agent skips
//! entries it did not ask for.

use serde::{Deserialize, Serialize};

/// Protocol revision; the agent announces it in `Hello`. 2: the agent decodes `LXP1` patches
/// (encoding 3); a client sends them only to agents of protocol 2 or later.
pub const PROTOCOL: u32 = 2;

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
    /// `receive --try`: the installed generation boots once by kexec; it becomes current when
    /// its health check runs `mark-good`, and a reset before that returns to `current`.
    Trying {
        generation: u32,
        current: Option<u32>,
        kernel: String,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// Why the agent stopped, as the `kind` of an [`AgentEvent::Error`]: shared by the agent, which
/// sends it, and the client, which exits with its [`exit_code`](ErrorKind::exit_code). On the wire
/// it is a snake_case string; a kind this build does not know (from a newer agent) is kept as
/// [`ErrorKind::Other`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad command line or an operation that makes no sense here.
    Usage,
    /// The bundle stream is corrupt or truncated.
    Corrupt,
    /// No signature by a trusted key.
    Untrusted,
    /// A store path or image does not match its manifest hash.
    Payload,
    /// The stream ended before every wanted store path or image arrived.
    Incomplete,
    /// What was written to flash does not read back as written.
    Verify,
    /// The bundle is for another board, or puts an image where this board has none.
    WrongBoard,
    /// The bundle's security epoch is lower than the installed one.
    Epoch,
    /// The board description cannot be loaded or does not describe this device.
    Board,
    /// The images do not fit the board's partitions, slots or volumes as described.
    Layout,
    /// An in-place update of a UBI volume that is mounted.
    Mounted,
    /// The A/B state does not allow the operation (e.g. the running slot is on trial).
    Refused,
    /// Not enough room in the store or on the flash target.
    NoSpace,
    /// Another agent holds the lock.
    Busy,
    /// Installed, but activating or rebooting failed.
    Activation,
    /// The device's generations or store are not in the state the operation needs.
    State,
    /// The A/B description of the device is missing or wrong.
    Config,
    /// The boot loader's environment or bootconfig cannot be read or written.
    BootLoader,
    /// The health check did not pass in time.
    Unhealthy,
    /// A flash device or UBI volume cannot be found, opened or attached.
    Device,
    /// Writing flash failed.
    Flash,
    /// A key file is unreadable or malformed.
    Key,
    /// Another I/O failure.
    Io,
    /// An image patch was made against other contents than the device holds: the sender
    /// should send the whole image. Nothing was written.
    BaseMismatch,
    /// A kind this build does not know, as sent.
    Other(String),
}

/// Every known kind with its wire name, the one table the conversions read.
const KINDS: [(ErrorKind, &str); 24] = [
    (ErrorKind::Usage, "usage"),
    (ErrorKind::Corrupt, "corrupt"),
    (ErrorKind::Untrusted, "untrusted"),
    (ErrorKind::Payload, "payload"),
    (ErrorKind::Incomplete, "incomplete"),
    (ErrorKind::Verify, "verify"),
    (ErrorKind::WrongBoard, "wrong_board"),
    (ErrorKind::Epoch, "epoch"),
    (ErrorKind::Board, "board"),
    (ErrorKind::Layout, "layout"),
    (ErrorKind::Mounted, "mounted"),
    (ErrorKind::Refused, "refused"),
    (ErrorKind::NoSpace, "no_space"),
    (ErrorKind::Busy, "busy"),
    (ErrorKind::Activation, "activation"),
    (ErrorKind::State, "state"),
    (ErrorKind::Config, "config"),
    (ErrorKind::BootLoader, "boot_loader"),
    (ErrorKind::Unhealthy, "unhealthy"),
    (ErrorKind::Device, "device"),
    (ErrorKind::Flash, "flash"),
    (ErrorKind::Key, "key"),
    (ErrorKind::Io, "io"),
    (ErrorKind::BaseMismatch, "base_mismatch"),
];

/// Exit codes of the agent and of the client where the agent decided (docs/errors.md).
pub mod exit {
    pub const OK: i32 = 0;
    /// I/O or other unexpected failure.
    pub const FAILURE: i32 = 1;
    /// Bad command line.
    pub const USAGE: i32 = 2;
    /// The bundle failed verification: signature, hash, corrupt or truncated stream.
    pub const VERIFY: i32 = 3;
    /// The bundle is authentic but refused: wrong board, lower security epoch, layout, state.
    pub const REFUSED: i32 = 4;
    /// Not enough free space for the update.
    pub const NO_SPACE: i32 = 5;
    /// Another agent holds the lock.
    pub const BUSY: i32 = 6;
    /// Installed, but activating the new generation (`--fast`) or rebooting failed.
    pub const ACTIVATION: i32 = 7;
    /// An image patch's base is not what the device holds: resend the whole image.
    pub const BASE_MISMATCH: i32 = 10;
}

impl ErrorKind {
    /// The name on the wire and in `--json` output.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorKind::Other(s) => s,
            known => KINDS
                .iter()
                .find(|(k, _)| k == known)
                .map(|(_, name)| *name)
                .expect("every known kind is in KINDS"),
        }
    }

    /// The kind named `name`; unknown names become [`ErrorKind::Other`].
    pub fn parse(name: &str) -> ErrorKind {
        KINDS
            .iter()
            .find(|(_, n)| *n == name)
            .map_or_else(|| ErrorKind::Other(name.to_owned()), |(k, _)| k.clone())
    }

    /// The documented exit code for this kind (see [`exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            ErrorKind::Usage => exit::USAGE,
            ErrorKind::Corrupt
            | ErrorKind::Untrusted
            | ErrorKind::Payload
            | ErrorKind::Incomplete
            | ErrorKind::Verify => exit::VERIFY,
            ErrorKind::WrongBoard
            | ErrorKind::Epoch
            | ErrorKind::Board
            | ErrorKind::Layout
            | ErrorKind::Mounted
            | ErrorKind::Refused => exit::REFUSED,
            ErrorKind::NoSpace => exit::NO_SPACE,
            ErrorKind::Busy => exit::BUSY,
            ErrorKind::Activation => exit::ACTIVATION,
            ErrorKind::BaseMismatch => exit::BASE_MISMATCH,
            ErrorKind::State
            | ErrorKind::Config
            | ErrorKind::BootLoader
            | ErrorKind::Unhealthy
            | ErrorKind::Device
            | ErrorKind::Flash
            | ErrorKind::Key
            | ErrorKind::Io
            | ErrorKind::Other(_) => exit::FAILURE,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| ErrorKind::parse(&s))
    }
}

/// The messages of `e` and of its causes, outermost first, for people: a cause whose text its
/// parent already shows (a parent that embeds its source, or a transparent wrapper) is left out,
/// so no sentence is printed twice. Programs print these as `caused by:` lines, and the wire's
/// `message` is them joined by `": "`.
pub fn causes(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut parent = out[0].clone();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !text.is_empty() && !parent.contains(&text) && !out.iter().any(|o| o.contains(&text)) {
            out.push(text.clone());
        }
        parent = text;
        next = s.source();
    }
    out
}

/// The whole error as one line: its message and each cause not already in it.
pub fn one_line(e: &dyn std::error::Error) -> String {
    causes(e).join(": ")
}

/// The error as a program prints it on stderr: `PROGRAM: error: MESSAGE` and one indented
/// `caused by:` line per cause.
pub fn report(program: &str, e: &dyn std::error::Error) -> String {
    let mut lines = causes(e).into_iter();
    let mut msg = format!("{program}: error: {}", lines.next().unwrap_or_default());
    for cause in lines {
        msg.push_str("\n  caused by: ");
        msg.push_str(&cause);
    }
    msg
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_keep_their_wire_names() {
        for (kind, name) in &KINDS {
            let event = AgentEvent::Error {
                kind: kind.clone(),
                message: "m".into(),
            };
            let line = event.to_line();
            let expected =
                format!("{{\"event\":\"error\",\"kind\":\"{name}\",\"message\":\"m\"}}\n");
            assert_eq!(line, expected);
            assert_eq!(AgentEvent::from_line(&line).unwrap(), event);
            assert_eq!(ErrorKind::parse(name), *kind);
        }
    }

    #[test]
    fn unknown_kind_from_a_newer_agent_is_kept() {
        let line = r#"{"event":"error","kind":"quantum_flux","message":"m"}"#;
        let AgentEvent::Error { kind, .. } = AgentEvent::from_line(line).unwrap() else {
            panic!("not an error event");
        };
        assert_eq!(kind, ErrorKind::Other("quantum_flux".into()));
        assert_eq!(kind.exit_code(), exit::FAILURE);
        assert_eq!(kind.to_string(), "quantum_flux");
    }

    #[test]
    fn exit_codes_follow_the_documented_groups() {
        assert_eq!(ErrorKind::Usage.exit_code(), exit::USAGE);
        for k in [ErrorKind::Corrupt, ErrorKind::Untrusted, ErrorKind::Payload] {
            assert_eq!(k.exit_code(), exit::VERIFY, "{k}");
        }
        for k in [ErrorKind::WrongBoard, ErrorKind::Epoch, ErrorKind::Mounted] {
            assert_eq!(k.exit_code(), exit::REFUSED, "{k}");
        }
        assert_eq!(ErrorKind::NoSpace.exit_code(), exit::NO_SPACE);
        assert_eq!(ErrorKind::Busy.exit_code(), exit::BUSY);
        assert_eq!(ErrorKind::Activation.exit_code(), exit::ACTIVATION);
        assert_eq!(ErrorKind::Io.exit_code(), exit::FAILURE);
    }

    #[derive(Debug, thiserror::Error)]
    enum Inner {
        #[error("the payload is not zstd data")]
        NotZstd,
    }

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("store path /nix/store/x failed verification")]
        Payload(#[source] Inner),
        #[error("reading /x: {0}")]
        Embeds(#[source] Inner),
        #[error(transparent)]
        Wraps(Inner),
    }

    #[test]
    fn causes_are_never_repeated() {
        let e = Outer::Payload(Inner::NotZstd);
        assert_eq!(
            report("p", &e),
            "p: error: store path /nix/store/x failed verification\n  caused by: the payload is not zstd data"
        );
        assert_eq!(
            one_line(&e),
            "store path /nix/store/x failed verification: the payload is not zstd data"
        );
        assert_eq!(
            report("p", &Outer::Embeds(Inner::NotZstd)),
            "p: error: reading /x: the payload is not zstd data"
        );
        assert_eq!(
            report("p", &Outer::Wraps(Inner::NotZstd)),
            "p: error: the payload is not zstd data"
        );
    }
}
