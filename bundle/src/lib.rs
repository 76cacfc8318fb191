//! Signed generation bundles for Liminix.
//!
//! A bundle carries a Liminix system closure (Nix store paths serialised as NARs) and, for image
//! boards, flash images. It is one stream that is verified while it is read: a manifest signed with
//! ed25519 comes first, so the receiver rejects an untrusted bundle before it reads any payload, and
//! every payload entry is checked against the sha256 the manifest records before it is used.
//! See `docs/bundle-format.md` for the byte layout.
#![forbid(unsafe_code)]

pub mod delta;
pub mod delta_patch;
pub mod limits;
pub mod manifest;
pub mod nar;
pub mod resolve;
pub mod sign;
pub mod storepath;
pub mod stream;
pub mod wire;

pub use manifest::{ImageEntry, Manifest, PathEntry};
pub use sign::{PublicKey, SecretKey, Signature};
pub use stream::{Encoding, EntryHeader, EntryKind, Header};
