//! ed25519 keys and manifest signatures.
//!
//! Key files are one text line, `liminix-ed25519-secret HEX` or `liminix-ed25519-public HEX`, so they
//! can be pasted into a Nix expression or an `authorized_keys`-like directory. A device trusts every
//! public key file in `/etc/liminix/trusted-keys/`; one valid signature from any of them suffices,
//! which is what makes key rotation possible (ship the new key, sign with both, drop the old one).

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

const SECRET_TAG: &str = "liminix-ed25519-secret";
const PUBLIC_TAG: &str = "liminix-ed25519-public";
/// Domain separation: a signature over a manifest can never be replayed as something else.
const CONTEXT: &[u8] = b"liminix-bundle-manifest-v1\0";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a liminix {kind} key file (expected one line `{tag} <64 hex digits>`)")]
    Format {
        path: PathBuf,
        kind: &'static str,
        tag: &'static str,
    },
    #[error("{path}: not a valid ed25519 public key")]
    BadPoint { path: PathBuf },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signer's public key, hex.
    pub key: String,
    /// ed25519 signature over the context string and the manifest bytes, hex.
    pub signature: String,
}

pub struct SecretKey(SigningKey);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

fn parse_line(text: &str, tag: &'static str) -> Option<[u8; 32]> {
    let mut words = text.split_whitespace();
    if words.next()? != tag {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(words.next()?, &mut out).ok()?;
    words.next().is_none().then_some(out)
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })
}

impl SecretKey {
    pub fn generate() -> Self {
        SecretKey(SigningKey::generate(&mut rand_core::OsRng))
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = parse_line(&read(path)?, SECRET_TAG).ok_or(KeyError::Format {
            path: path.to_owned(),
            kind: "secret",
            tag: SECRET_TAG,
        })?;
        Ok(SecretKey(SigningKey::from_bytes(&bytes)))
    }

    pub fn to_file_text(&self) -> String {
        format!("{SECRET_TAG} {}\n", hex::encode(self.0.to_bytes()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn sign_manifest(&self, manifest: &[u8]) -> Signature {
        let sig = self.0.sign(&message(manifest));
        Signature {
            key: self.public().to_hex(),
            signature: hex::encode(sig.to_bytes()),
        }
    }
}

impl PublicKey {
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read(path)?;
        Self::from_text(&text).ok_or_else(|| match parse_line(&text, PUBLIC_TAG) {
            Some(_) => KeyError::BadPoint {
                path: path.to_owned(),
            },
            None => KeyError::Format {
                path: path.to_owned(),
                kind: "public",
                tag: PUBLIC_TAG,
            },
        })
    }

    pub fn from_text(text: &str) -> Option<Self> {
        let bytes = parse_line(text, PUBLIC_TAG)?;
        VerifyingKey::from_bytes(&bytes).ok().map(PublicKey)
    }

    pub fn to_file_text(&self) -> String {
        format!("{PUBLIC_TAG} {}\n", self.to_hex())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// True when `sig` is this key's valid signature over `manifest`.
    pub fn verifies(&self, manifest: &[u8], sig: &Signature) -> bool {
        if sig.key != self.to_hex() {
            return false;
        }
        let mut raw = [0u8; 64];
        if hex::decode_to_slice(&sig.signature, &mut raw).is_err() {
            return false;
        }
        let sig = ed25519_dalek::Signature::from_bytes(&raw);
        self.0.verify_strict(&message(manifest), &sig).is_ok()
    }
}

fn message(manifest: &[u8]) -> Vec<u8> {
    [CONTEXT, manifest].concat()
}

/// The keys of a trusted-keys directory: those that load, and the files that do not.
#[derive(Debug, Default)]
pub struct TrustedKeys {
    pub keys: Vec<PublicKey>,
    /// Files that are unreadable or not public key files. They add no trust and take none away:
    /// one damaged file must not stop the device from accepting bundles its other keys sign.
    pub damaged: Vec<KeyError>,
}

/// Public keys from every regular file in `dir` (a missing directory trusts nothing). A file
/// that is not a key file is returned in [`TrustedKeys::damaged`] for the caller to report; only
/// a directory that cannot be listed is an error.
pub fn load_trusted_dir(dir: &Path) -> Result<TrustedKeys, KeyError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TrustedKeys::default()),
        Err(source) => {
            return Err(KeyError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut out = TrustedKeys::default();
    for p in &paths {
        match PublicKey::load(p) {
            Ok(k) => out.keys.push(k),
            Err(e) => out.damaged.push(e),
        }
    }
    Ok(out)
}

/// Why no signature of a manifest is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No signature names a trusted key (or there is none).
    UnknownKeys,
    /// A signature names a trusted key (hex) but does not verify: the manifest or the signature
    /// changed after signing.
    Invalid { key: String },
}

/// Index of the first signature made by a trusted key, or why there is none.
pub fn check_signatures(
    manifest: &[u8],
    sigs: &[Signature],
    trusted: &[PublicKey],
) -> Result<usize, Rejection> {
    if let Some(i) = trusted_signature(manifest, sigs, trusted) {
        return Ok(i);
    }
    sigs.iter()
        .find(|s| trusted.iter().any(|k| k.to_hex() == s.key))
        .map_or(Err(Rejection::UnknownKeys), |s| {
            Err(Rejection::Invalid { key: s.key.clone() })
        })
}

/// Index of the first signature made by a trusted key, if any.
pub fn trusted_signature(
    manifest: &[u8],
    sigs: &[Signature],
    trusted: &[PublicKey],
) -> Option<usize> {
    sigs.iter()
        .position(|s| trusted.iter().any(|k| k.verifies(manifest, s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject() {
        let k = SecretKey::generate();
        let other = SecretKey::generate();
        let m = br#"{"x":1}"#;
        let s = k.sign_manifest(m);
        assert!(k.public().verifies(m, &s));
        assert!(!other.public().verifies(m, &s));
        assert!(!k.public().verifies(br#"{"x":2}"#, &s));
        let mut forged = s.clone();
        forged.key = other.public().to_hex();
        assert!(!other.public().verifies(m, &forged));
        assert_eq!(
            trusted_signature(m, std::slice::from_ref(&s), &[other.public()]),
            None
        );
        assert_eq!(
            trusted_signature(m, &[forged, s], &[other.public(), k.public()]),
            Some(1)
        );
    }

    #[test]
    fn key_files_roundtrip() {
        let k = SecretKey::generate();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), k.to_file_text()).unwrap();
        std::fs::write(dir.path().join("p"), k.public().to_file_text()).unwrap();
        let k2 = SecretKey::load(&dir.path().join("s")).unwrap();
        assert_eq!(k2.public(), k.public());
        assert_eq!(PublicKey::load(&dir.path().join("p")).unwrap(), k.public());
        assert!(matches!(
            PublicKey::load(&dir.path().join("s")),
            Err(KeyError::Format { .. })
        ));
    }

    #[test]
    fn an_altered_signature_is_told_from_an_unknown_key() {
        let k = SecretKey::generate();
        let other = SecretKey::generate();
        let m = br#"{"x":1}"#;
        let s = k.sign_manifest(m);
        assert_eq!(
            check_signatures(m, std::slice::from_ref(&s), &[k.public()]),
            Ok(0)
        );
        assert_eq!(
            check_signatures(m, std::slice::from_ref(&s), &[other.public()]),
            Err(Rejection::UnknownKeys)
        );
        assert_eq!(
            check_signatures(m, &[], &[k.public()]),
            Err(Rejection::UnknownKeys)
        );
        let mut altered = s.clone();
        let flipped = if altered.signature.starts_with('0') {
            "1"
        } else {
            "0"
        };
        altered.signature.replace_range(0..1, flipped);
        let invalid = Err(Rejection::Invalid {
            key: k.public().to_hex(),
        });
        assert_eq!(
            check_signatures(m, std::slice::from_ref(&altered), &[k.public()]),
            invalid
        );
        // The same for a manifest changed after signing.
        assert_eq!(
            check_signatures(br#"{"x":2}"#, &[s], &[k.public()]),
            invalid
        );
    }

    #[test]
    fn a_damaged_key_file_is_reported_and_the_others_still_load() {
        let k = SecretKey::generate();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a-garbled.pub"),
            "liminix-ed25519-public zz\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.pub"), k.public().to_file_text()).unwrap();
        std::fs::write(dir.path().join("c-secret"), k.to_file_text()).unwrap();
        let t = load_trusted_dir(dir.path()).unwrap();
        assert_eq!(t.keys, vec![k.public()]);
        assert_eq!(t.damaged.len(), 2);
        assert!(
            matches!(&t.damaged[0], KeyError::Format { path, .. } if path.ends_with("a-garbled.pub"))
        );
        assert!(
            matches!(&t.damaged[1], KeyError::Format { path, .. } if path.ends_with("c-secret"))
        );
        let none = load_trusted_dir(&dir.path().join("missing")).unwrap();
        assert!(none.keys.is_empty() && none.damaged.is_empty());
    }
}
