//! The manifest: what a bundle claims to contain, signed as a whole.
//!
//! It is JSON so that `liminix-pack inspect` and humans can read it, but it is parsed strictly:
//! unknown fields are refused, store paths are validated, and the list of paths must be sorted and
//! unique so that one manifest has exactly one serialisation a signer could have meant.

use serde::{Deserialize, Serialize};

use crate::storepath::StorePath;

/// Bundle format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Upper bound for the manifest, so that a hostile stream cannot make the device allocate much.
pub const MAX_MANIFEST_BYTES: u32 = 16 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// Board name as in `/etc/liminix/board` on the device.
    pub board: String,
    pub generation: Generation,
    /// Security epoch: a device refuses a bundle whose epoch is lower than the highest it installed.
    pub epoch: u64,
    /// Every store path of the closure, including the toplevel, sorted by path.
    pub paths: Vec<PathEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    /// The system configuration store path (`…-system-configuration-<arch>`).
    pub toplevel: String,
    /// Seconds since the epoch, UTC, when the bundle was made (or `SOURCE_DATE_EPOCH`).
    pub build_time: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathEntry {
    pub path: String,
    /// sha256 of the path's NAR serialisation, lower-case hex (`nix-store --dump P | sha256sum`).
    pub nar_sha256: String,
    pub nar_size: u64,
    /// Files, directories and symlinks in the path: with `nar_size`, a receiver's upper bound for
    /// the space (blocks and inodes) the path will take.
    pub entries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON for format {FORMAT_VERSION}: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bundle format {found} is not supported (this agent reads format {FORMAT_VERSION})")]
    Version { found: u32 },
    #[error("manifest names an invalid store path {path:?}: {source}")]
    BadPath {
        path: String,
        source: crate::storepath::StorePathError,
    },
    #[error("manifest paths are not sorted and unique at {path:?}")]
    Unsorted { path: String },
    #[error("manifest has a malformed NAR hash for {path:?}")]
    BadHash { path: String },
    #[error("toplevel {toplevel:?} is not one of the manifest's paths")]
    ToplevelMissing { toplevel: String },
    #[error("board name {0:?} is not a plain name")]
    BadBoard(String),
}

impl Manifest {
    /// Parses and validates manifest bytes exactly as they were signed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes)?;
        m.validate()?;
        Ok(m)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifest serialises")
    }

    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.format != FORMAT_VERSION {
            return Err(ManifestError::Version { found: self.format });
        }
        let board_ok = !self.board.is_empty()
            && self
                .board
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !board_ok {
            return Err(ManifestError::BadBoard(self.board.clone()));
        }
        let mut previous: Option<&str> = None;
        for entry in &self.paths {
            StorePath::parse(&entry.path).map_err(|source| ManifestError::BadPath {
                path: entry.path.clone(),
                source,
            })?;
            if previous.is_some_and(|p| p >= entry.path.as_str()) {
                return Err(ManifestError::Unsorted {
                    path: entry.path.clone(),
                });
            }
            previous = Some(&entry.path);
            let hash_ok = entry.nar_sha256.len() == 64
                && entry
                    .nar_sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hash_ok {
                return Err(ManifestError::BadHash {
                    path: entry.path.clone(),
                });
            }
        }
        StorePath::parse(&self.generation.toplevel).map_err(|source| ManifestError::BadPath {
            path: self.generation.toplevel.clone(),
            source,
        })?;
        if self.index_of(&self.generation.toplevel).is_none() {
            return Err(ManifestError::ToplevelMissing {
                toplevel: self.generation.toplevel.clone(),
            });
        }
        Ok(())
    }

    pub fn index_of(&self, path: &str) -> Option<usize> {
        self.paths
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
    }

    pub fn total_nar_size(&self) -> u64 {
        self.paths.iter().map(|p| p.nar_size).sum()
    }

    pub fn toplevel(&self) -> StorePath {
        StorePath::parse(&self.generation.toplevel).expect("validated")
    }
}

impl PathEntry {
    pub fn store_path(&self) -> StorePath {
        StorePath::parse(&self.path).expect("validated")
    }

    pub fn sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.nar_sha256, &mut out).expect("validated");
        out
    }
}
