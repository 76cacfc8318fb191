//! Agent errors, the wire error kind of each and, through it, the exit code (docs/errors.md).

use std::path::PathBuf;

use liminix_bundle::nar::NarError;
use liminix_bundle::storepath::StorePathError;
use liminix_bundle::stream::StreamError;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};

/// Exit codes are part of the agent's interface: `update.sh` and scripts act on them. They live
/// with the wire's error kinds so that agent and client share one table.
pub use liminix_bundle::wire::exit;
pub use liminix_bundle::wire::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("no trusted signature: the bundle is signed by {signers} but this device trusts only the keys in {dir} ({trusted} key(s))")]
    Untrusted {
        signers: String,
        dir: PathBuf,
        trusted: usize,
    },
    #[error("the bundle's signature by trusted key {key} does not verify: the manifest or the signature was altered after signing")]
    BadSignature { key: String },
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
    #[error("store path {path} failed verification")]
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
    #[error("activation failed")]
    Activation(#[from] ActivationError),
    #[error(transparent)]
    Key(#[from] liminix_bundle::sign::KeyError),
    #[error(transparent)]
    Flash(#[from] crate::flashops::FlashOpError),
    #[error(transparent)]
    Apply(#[from] crate::apply::ApplyError),
    #[error(transparent)]
    Ab(#[from] crate::ab::AbError),
    #[error(transparent)]
    Levitate(#[from] crate::levitate::LevitateError),
    #[error(transparent)]
    Kexec(#[from] liminix_kexec::KexecError),
    #[error(transparent)]
    Trial(#[from] crate::trial::TrialError),
    #[error(transparent)]
    BtrfsRoot(#[from] crate::btrfs_root::BtrfsRootError),
}

/// A command that makes no sense on this device or with this bundle.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(
        "--try boots the installed generation on this running system; with --root use --no-reboot"
    )]
    TryWithRoot,
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
    /// Not a source: the decoder's own texts are its internals (`BadMagicNumber(13)`).
    #[error("{}", zstd_sentence(.0))]
    Zstd(ruzstd::decoding::errors::FrameDecoderError),
    #[error(transparent)]
    Nar(NarError),
    #[error("{}", read_sentence(.0))]
    Read(std::io::Error),
    #[error("trailing data after the NAR")]
    Trailing,
    #[error("delta against {0}, which this agent did not offer")]
    NotOffered(String),
    #[error(transparent)]
    BaseName(#[from] StorePathError),
    #[error("cannot read delta base {base}")]
    Base {
        base: String,
        #[source]
        source: NarError,
    },
    #[error("the delta is malformed: {}", delta_sentence(.0))]
    Delta(std::io::Error),
    #[error("NAR sha256 {} ({got_size} bytes) does not match the signed manifest's {want_sha256} ({want_size} bytes)", hex::encode(got_sha256))]
    NarMismatch {
        got_sha256: [u8; 32],
        got_size: u64,
        want_sha256: String,
        want_size: u64,
    },
    #[error("store path deltas are never images, nor image patches store paths")]
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
    #[error("{path} is not a valid generation record")]
    GenerationInfo {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{list} names {entry:?}, which is not a store path")]
    BadListEntry {
        list: String,
        entry: String,
        #[source]
        source: StorePathError,
    },
    #[error("generation {number} is damaged: {problem}")]
    Damaged { number: u32, problem: String },
    #[error("no generation to roll back to: the previous one, generation {previous}, is damaged ({problem}) and no other is whole")]
    NoWholeGeneration { previous: u32, problem: String },
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
    #[error("cannot run {command}")]
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

    /// The error and its causes on one line, each said once: the `message` of the wire's and
    /// `--json`'s `error` event.
    pub fn message(&self) -> String {
        liminix_bundle::wire::one_line(self)
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
            AgentError::Untrusted { .. } | AgentError::BadSignature { .. } => ErrorKind::Untrusted,
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
            AgentError::Levitate(e) => e.kind(),
            AgentError::Kexec(e) => kexec_kind(e),
            AgentError::Trial(e) => e.kind(),
            AgentError::BtrfsRoot(e) => e.kind(),
        }
    }
}

/// A kernel the loader cannot take is a usage error, one that does not fit RAM a space error,
/// a refusal by the running kernel a device error, and a failed jump an activation error.
fn kexec_kind(e: &liminix_kexec::KexecError) -> ErrorKind {
    use liminix_kexec::KexecError as K;
    match e {
        K::Read { .. } | K::Stage { .. } => ErrorKind::Io,
        K::UnknownKernel(_)
        | K::Malformed(_)
        | K::Fdt(_)
        | K::Decompress { .. }
        | K::NulInCommandLine => ErrorKind::Usage,
        K::TooBig { .. }
        | K::OutsideRam { .. }
        | K::Overlap { .. }
        | K::TooManySegments { .. }
        | K::AddressWidth(_) => ErrorKind::NoSpace,
        K::Syscall { call, .. } if call.starts_with("reboot") => ErrorKind::Activation,
        K::NoRam | K::Syscall { .. } | K::Unsupported { .. } => ErrorKind::Device,
    }
}

/// A NAR read error that is a decoder's is told as the decoder's sentence.
impl From<NarError> for PayloadError {
    fn from(e: NarError) -> Self {
        match e {
            NarError::Read { source, offset } => match decoder_error(source) {
                Ok(z) => PayloadError::Zstd(z),
                Err(source) => PayloadError::Nar(NarError::Read { source, offset }),
            },
            other => PayloadError::Nar(other),
        }
    }
}

/// The zstd decoder's error inside an I/O error, if that is what it carries.
fn decoder_error(e: std::io::Error) -> Result<FrameDecoderError, std::io::Error> {
    if e.get_ref().is_some_and(|i| i.is::<FrameDecoderError>()) {
        let inner = e.into_inner().expect("checked above");
        Ok(*inner
            .downcast::<FrameDecoderError>()
            .expect("checked above"))
    } else {
        Err(e)
    }
}

/// What a zstd decoding failure means for the person holding the bundle.
fn zstd_sentence(e: &FrameDecoderError) -> &'static str {
    use ReadFrameHeaderError as H;
    match e {
        FrameDecoderError::ReadFrameHeaderError(H::BadMagicNumber(_) | H::SkipFrame { .. }) => {
            "the payload is not zstd data"
        }
        FrameDecoderError::ReadFrameHeaderError(H::MagicNumberReadError(_)) => {
            "the payload is empty where zstd data should be"
        }
        FrameDecoderError::WindowSizeTooBig { .. } => {
            "the zstd data asks for a larger window than this agent decodes"
        }
        FrameDecoderError::DictNotProvided { .. } => {
            "the zstd data needs a dictionary, which bundles never use"
        }
        _ => "the zstd data is corrupt",
    }
}

/// A read failure of an entry in words: the decoder's meaning, an early end, or the system's.
fn read_sentence(e: &std::io::Error) -> String {
    known_words(e).map_or_else(
        || format!("cannot read the entry's data: {e}"),
        str::to_owned,
    )
}

/// What a malformed delta is, in words.
fn delta_sentence(e: &std::io::Error) -> String {
    known_words(e).map_or_else(|| e.to_string(), str::to_owned)
}

/// The words for a read failure whose cause is known: a decoder's error or an early end.
fn known_words(e: &std::io::Error) -> Option<&'static str> {
    match e
        .get_ref()
        .and_then(|i| i.downcast_ref::<FrameDecoderError>())
    {
        Some(z) => Some(zstd_sentence(z)),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Some("the entry's data ends early")
        }
        None => None,
    }
}

/// `e`, unless the stream ended inside the entry being read: then the bundle is truncated,
/// whatever a decoder made of the missing bytes.
pub fn truncation_or<R: std::io::Read>(
    chunks: &liminix_bundle::stream::ChunkReader<'_, R>,
    e: AgentError,
) -> AgentError {
    if chunks.truncated() {
        StreamError::Truncated(liminix_bundle::stream::ENTRY_DATA).into()
    } else {
        e
    }
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode(bytes: &[u8]) -> PayloadError {
        let mut dec = match ruzstd::decoding::StreamingDecoder::new(bytes) {
            Ok(d) => d,
            Err(e) => return PayloadError::Zstd(e),
        };
        let mut out = Vec::new();
        PayloadError::Read(dec.read_to_end(&mut out).unwrap_err())
    }

    #[test]
    fn zstd_failures_are_told_in_words() {
        assert_eq!(
            decode(b"nix-archive-1 is not zstd").to_string(),
            "the payload is not zstd data"
        );
        assert_eq!(
            decode(b"").to_string(),
            "the payload is empty where zstd data should be"
        );
        // A real frame, cut short: the decoder's error inside an I/O error.
        let mut frame = ruzstd::encoding::compress_to_vec(
            &[7u8; 4096][..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        frame.truncate(frame.len() - 3);
        let e = decode(&frame).to_string();
        assert!(
            e == "the zstd data is corrupt" || e == "the entry's data ends early",
            "{e}"
        );
        assert!(!e.contains("Error") && !e.contains("Kind("), "{e}");
    }

    #[test]
    fn messages_say_each_cause_once() {
        let e = AgentError::Payload {
            path: "/nix/store/x".into(),
            source: Box::new(PayloadError::Read(std::io::ErrorKind::UnexpectedEof.into())),
        };
        assert_eq!(
            e.message(),
            "store path /nix/store/x failed verification: the entry's data ends early"
        );
        let e = AgentError::io("reading", "/x")(std::io::ErrorKind::NotFound.into());
        assert_eq!(e.to_string(), "reading /x");
        assert_eq!(e.message(), "reading /x: entity not found");
    }
}
