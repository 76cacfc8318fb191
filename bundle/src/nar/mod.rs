//! NAR (Nix ARchive) serialisation, the format in which a bundle carries store paths.
//!
//! A NAR records only what the Nix store keeps of a file system object: regular files (contents
//! and the executable bit), symlinks (target) and directories (entries sorted by raw byte name).
//! Because the encoding is canonical, the sha256 of a NAR is the `narHash` Nix records for a store
//! path, so a receiver can check a restored path against the build's registration data.
//!
//! * [`dump`] / [`hash_path`] write the NAR of a path byte-identical to `nix-store --dump`.
//! * [`restore`] parses an untrusted NAR stream and creates the tree, hashing every byte it
//!   consumes and reading nothing past the end of the archive, so the caller's stream can carry
//!   further data after it. Creation is done relative to already-opened parent directories and
//!   never follows symlinks, so a hostile NAR cannot write outside the destination.
//! * [`verify_stream`] parses and hashes without touching the file system.
//! * [`remove_tree`] deletes a restored (read-only) tree, e.g. after a failed restore.
//!
//! The reader side issues small reads for the framing tokens; pass a buffered reader (or a
//! decompressor, which buffers anyway) when the source is a raw pipe or socket.

mod dump;
mod hash;
mod parse;
mod remove;
mod restore;

use std::fmt;
use std::path::PathBuf;

pub use dump::{dump, hash_path};
pub use remove::remove_tree;
pub use restore::{restore, verify_stream};

use crate::storepath::nix32_encode;

/// Size of the buffer file contents are streamed through, in both directions.
pub(crate) const COPY_BUF_SIZE: usize = 64 * 1024;

/// sha256 and length of a NAR, as Nix records them (`narHash`, `narSize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NarHash {
    pub sha256: [u8; 32],
    pub size: u64,
}

impl NarHash {
    /// Lower-case hex of the sha256 (what `nix-store --dump-db` prints).
    pub fn to_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// Nix's base-32 form of the sha256 (52 characters).
    pub fn to_nix32(&self) -> String {
        nix32_encode(&self.sha256)
    }

    /// `sha256:<nix32>`, the form used in `closureInfo` registration files and `.narinfo`.
    pub fn to_nix_string(&self) -> String {
        format!("sha256:{}", self.to_nix32())
    }
}

impl fmt::Display for NarHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} bytes)", self.to_nix_string(), self.size)
    }
}

/// Options for [`restore`] and [`verify_stream`].
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Refuse a NAR longer than this many bytes (checked before the bytes are read).
    pub max_size: Option<u64>,
}

/// Errors of the NAR layer. `offset` is the byte offset in the NAR where the offending item
/// starts; `entry` is the path of the entry inside the NAR (`/` is the top-level object).
#[derive(Debug, thiserror::Error)]
pub enum NarError {
    #[error("cannot {op} {}: {source}", path.display())]
    Fs {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: unsupported file type (only regular files, directories and symlinks)", path.display())]
    UnsupportedFileType { path: PathBuf },
    #[error("{}: file changed size while it was being archived", path.display())]
    FileChanged { path: PathBuf },
    #[error("cannot write NAR output: {0}")]
    Write(#[source] std::io::Error),
    #[error("cannot read NAR input at byte {offset}: {source}")]
    Read { offset: u64, source: std::io::Error },
    #[error("NAR truncated at byte {offset} (inside {entry})")]
    Truncated { offset: u64, entry: String },
    #[error("not a NAR: bad magic at byte 0")]
    BadMagic,
    #[error(
        "malformed NAR at byte {offset} (inside {entry}): expected {expected}, found {found:?}"
    )]
    UnexpectedToken {
        offset: u64,
        entry: String,
        expected: &'static str,
        found: String,
    },
    #[error("malformed NAR at byte {offset} (inside {entry}): non-zero padding")]
    BadPadding { offset: u64, entry: String },
    #[error("malformed NAR at byte {offset} (inside {entry}): {what} of {len} bytes exceeds the limit of {max}")]
    TooLong {
        offset: u64,
        entry: String,
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error(
        "malformed NAR at byte {offset} (inside {entry}): invalid entry name {name:?}: {reason}"
    )]
    BadName {
        offset: u64,
        entry: String,
        name: String,
        reason: &'static str,
    },
    #[error("malformed NAR at byte {offset} (inside {entry}): entry {name:?} is not after {prev:?} in byte order (unsorted or duplicate)")]
    Unsorted {
        offset: u64,
        entry: String,
        prev: String,
        name: String,
    },
    #[error("malformed NAR at byte {offset} (inside {entry}): invalid symlink target {target:?}: {reason}")]
    BadSymlinkTarget {
        offset: u64,
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error("malformed NAR at byte {offset}: directories nested deeper than {max} (at {entry})")]
    TooDeep {
        offset: u64,
        entry: String,
        max: usize,
    },
    #[error("NAR exceeds the maximum size of {max} bytes (at byte {offset}, inside {entry})")]
    TooLarge {
        offset: u64,
        entry: String,
        max: u64,
    },
    #[error("cannot restore to {}: {reason}", path.display())]
    BadDestination { path: PathBuf, reason: &'static str },
    #[error("cannot {op} {entry} (NAR byte {offset}) under {}: {source}", dest.display())]
    Create {
        op: &'static str,
        entry: String,
        offset: u64,
        dest: PathBuf,
        source: std::io::Error,
    },
}
