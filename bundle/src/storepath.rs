//! Nix store paths and Nix's base-32 ("nix32") encoding.
//!
//! A bundle names every payload by the store path it is restored to, and the receiver creates
//! `/nix/store/<base name>` from that name. The name therefore comes from an untrusted stream and
//! must be validated with the same rules Nix applies (digest of 32 nix32 characters, a name of at
//! most 211 characters from a small alphabet, no `.`/`..`), so it can never escape the store
//! directory or point into a subdirectory.

use std::fmt;
use std::str::FromStr;

/// The only store directory Liminix uses.
pub const STORE_DIR: &str = "/nix/store";

/// Nix's base-32 alphabet: digits and lower-case letters without e, o, u and t.
const NIX32_ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Length of the digest part of a store path (20 bytes in nix32).
const DIGEST_LEN: usize = 32;

/// Longest name Nix accepts after `<digest>-`.
const MAX_NAME_LEN: usize = 211;

/// Why a store path or nix32 string was rejected.
#[derive(Debug, thiserror::Error)]
pub enum StorePathError {
    #[error("{input:?} is not a path directly inside {STORE_DIR}")]
    NotInStore { input: String },
    #[error("{input:?} is not of the form <32-character digest>-<name>")]
    BadShape { input: String },
    #[error("{input:?}: digest {digest:?} is not 32 nix32 characters")]
    BadDigest { input: String, digest: String },
    #[error("{input:?}: invalid store path name: {reason}")]
    BadName { input: String, reason: &'static str },
    #[error("{input:?}: character {ch:?} at position {pos} is not in the nix32 alphabet")]
    Nix32Char { input: String, ch: char, pos: usize },
    #[error("{input:?} is not a canonical nix32 encoding (it has bits beyond the decoded length)")]
    Nix32Overflow { input: String },
}

/// A validated store path `/nix/store/<digest>-<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    digest: String,
    name: String,
}

impl StorePath {
    /// Parses a full store path. Only the store object itself is accepted: no trailing slash,
    /// no path inside the object, no other directory.
    pub fn parse(s: &str) -> Result<StorePath, StorePathError> {
        let base = s
            .strip_prefix(STORE_DIR)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| StorePathError::NotInStore {
                input: s.to_owned(),
            })?;
        Self::validate(s, base)
    }

    /// Parses the entry name inside the store directory, `<digest>-<name>`.
    pub fn from_base_name(s: &str) -> Result<StorePath, StorePathError> {
        Self::validate(s, s)
    }

    /// `input` is only used in error messages, so they show what the caller passed.
    fn validate(input: &str, base: &str) -> Result<StorePath, StorePathError> {
        let bytes = base.as_bytes();
        if bytes.len() <= DIGEST_LEN + 1 || bytes[DIGEST_LEN] != b'-' {
            return Err(StorePathError::BadShape {
                input: input.to_owned(),
            });
        }
        // The '-' at DIGEST_LEN is ASCII, so both slices fall on character boundaries.
        let (digest, name) = (&base[..DIGEST_LEN], &base[DIGEST_LEN + 1..]);
        if !digest.bytes().all(|b| NIX32_ALPHABET.contains(&b)) {
            return Err(StorePathError::BadDigest {
                input: input.to_owned(),
                digest: digest.to_owned(),
            });
        }
        check_name(name).map_err(|reason| StorePathError::BadName {
            input: input.to_owned(),
            reason,
        })?;
        Ok(StorePath {
            digest: digest.to_owned(),
            name: name.to_owned(),
        })
    }

    /// `<digest>-<name>`: the entry name inside the store directory.
    pub fn base_name(&self) -> String {
        format!("{}-{}", self.digest, self.name)
    }

    /// The 32-character nix32 digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The name after the digest, e.g. `busybox-1.36.1`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Nix's name rules (libstore `checkName`).
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("name is longer than 211 characters");
    }
    if name == "." || name == ".." {
        return Err("name is \".\" or \"..\"");
    }
    if name.starts_with(".-") || name.starts_with("..-") {
        return Err("name starts with \".-\" or \"..-\"");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b);
    if !name.bytes().all(allowed) {
        return Err("name contains a character outside [A-Za-z0-9+-._?=]");
    }
    Ok(())
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STORE_DIR}/{}-{}", self.digest, self.name)
    }
}

impl FromStr for StorePath {
    type Err = StorePathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StorePath::parse(s)
    }
}

/// Number of nix32 characters for `n` bytes: ceil(n * 8 / 5).
fn nix32_len(n: usize) -> usize {
    (n * 8).div_ceil(5)
}

/// Encodes bytes in Nix's base-32: the last character holds the lowest 5 bits of the first byte,
/// i.e. the string is written most-significant group first over a little-endian bit string.
pub fn nix32_encode(bytes: &[u8]) -> String {
    let len = nix32_len(bytes.len());
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        let low = bytes[i] >> j;
        let high = match bytes.get(i + 1) {
            Some(&next) if j > 3 => next << (8 - j),
            _ => 0,
        };
        out.push(NIX32_ALPHABET[usize::from((low | high) & 0x1f)] as char);
    }
    out
}

/// Decodes Nix's base-32. The result has `len * 5 / 8` bytes; bits that would fall beyond that
/// must be zero, so every byte string has exactly one accepted encoding.
pub fn nix32_decode(s: &str) -> Result<Vec<u8>, StorePathError> {
    let size = s.len() * 5 / 8;
    let mut out = vec![0u8; size];
    for (n, (pos, ch)) in s.char_indices().rev().enumerate() {
        let digit = nix32_digit(ch).ok_or_else(|| StorePathError::Nix32Char {
            input: s.to_owned(),
            ch,
            pos,
        })?;
        for k in 0..5 {
            if digit & (1 << k) == 0 {
                continue;
            }
            let bit = n * 5 + k;
            let byte = out
                .get_mut(bit / 8)
                .ok_or_else(|| StorePathError::Nix32Overflow {
                    input: s.to_owned(),
                })?;
            *byte |= 1 << (bit % 8);
        }
    }
    Ok(out)
}

fn nix32_digit(ch: char) -> Option<u8> {
    let b = u8::try_from(ch).ok()?;
    NIX32_ALPHABET.iter().position(|&a| a == b).map(|p| p as u8)
}
