//! Bundles written by hand instead of by the packer: signed by a key the test chooses, with
//! whatever manifest and payload the test needs (hostile numbers, path escapes, damaged data, a
//! toplevel the packer refuses to sign). The agent must refuse them on its own.

use std::io::Write;

use liminix_bundle::manifest::{Generation, PathEntry, FORMAT_VERSION};
use liminix_bundle::stream::{self, ChunkWriter, Encoding, EntryHeader, EntryKind, Header};
use liminix_bundle::{Manifest, SecretKey};

/// The toplevel of the hand-written bundles.
pub const TOP: &str = "/nix/store/3wlx5g1j0cgw2bq9hbs3wbkzrk8x6ph5-system-configuration-x86_64";

/// A manifest for board `qemu` at epoch 0 whose toplevel is its one store path `TOP`, with the
/// NAR's hash, size and entry count as given (honest or not).
pub fn one_path(nar_sha256: [u8; 32], nar_size: u64, entries: u64) -> Manifest {
    Manifest {
        format: FORMAT_VERSION,
        board: "qemu".into(),
        generation: Generation {
            toplevel: TOP.into(),
            build_time: 1,
        },
        epoch: 0,
        paths: vec![PathEntry {
            path: TOP.into(),
            nar_sha256: hex::encode(nar_sha256),
            nar_size,
            entries,
        }],
        images: Vec::new(),
    }
}

/// A bundle whose header signs `manifest_bytes` (normally `m.to_bytes()`; a test may give raw
/// JSON) with `key`, then one store-path entry per `(index, encoding, payload)`, then the end
/// marker.
pub fn signed(
    key: &SecretKey,
    m: Manifest,
    manifest_bytes: Vec<u8>,
    entries: &[(u32, Encoding, &[u8])],
) -> Vec<u8> {
    let header = Header {
        signatures: vec![key.sign_manifest(&manifest_bytes)],
        manifest_bytes,
        manifest: m,
    };
    let mut out = Vec::new();
    header.write(&mut out).unwrap();
    for (index, encoding, payload) in entries {
        EntryHeader {
            kind: EntryKind::StorePath,
            index: *index,
            encoding: encoding.clone(),
        }
        .write(&mut out)
        .unwrap();
        let mut w = ChunkWriter::new(out);
        w.write_all(payload).unwrap();
        out = w.finish().unwrap();
    }
    stream::write_end(&mut out).unwrap();
    out
}

/// A NAR string: u64 little-endian length, the bytes, zero padding to 8.
pub fn nar_string(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
    out.extend_from_slice(v);
    out.resize(out.len().next_multiple_of(8), 0);
}
