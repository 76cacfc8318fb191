//! `dump`/`hash_path` compared byte for byte with the real `nix-store --dump`, plus Nix's own
//! NAR hash test vectors (docs/formats/nar.md, "NAR").

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use liminix_bundle::nar::{dump, hash_path, NarHash};
use liminix_bundle::storepath::{nix32_encode, STORE_DIR};
use sha2::{Digest, Sha256};

fn nix_dump(path: &Path) -> Vec<u8> {
    let out = Command::new("nix-store")
        .arg("--dump")
        .arg(path)
        .output()
        .expect("nix-store not runnable: install nix-bin (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "nix-store --dump {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn our_dump(path: &Path) -> (Vec<u8>, NarHash) {
    let mut out = Vec::new();
    let h = dump(path, &mut out).unwrap();
    (out, h)
}

/// Checks dump == nix-store --dump and that both reported hashes are those of the bytes.
fn assert_same_as_nix(path: &Path) -> NarHash {
    let expected = nix_dump(path);
    let (ours, h) = our_dump(path);
    assert!(
        ours == expected,
        "dump of {} differs from nix-store --dump",
        path.display()
    );
    let sha: [u8; 32] = Sha256::digest(&expected).into();
    assert_eq!(
        h,
        NarHash {
            sha256: sha,
            size: expected.len() as u64
        }
    );
    assert_eq!(hash_path(path).unwrap(), h);
    h
}

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Deterministic pseudo-random bytes (xorshift), so large files are not trivially compressible.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn build_varied_tree(root: &Path) {
    fs::create_dir(root).unwrap();
    write(&root.join("file"), b"hello\n", 0o644);
    write(&root.join("empty"), b"", 0o644);
    write(&root.join("exe"), b"#!/bin/sh\necho hi\n", 0o755);
    write(&root.join("owner-exec-only"), b"x", 0o744);
    write(&root.join("other-exec-only"), b"x", 0o645);
    write(&root.join("readonly"), b"ro", 0o400);
    for n in 1..=17 {
        write(&root.join(format!("len{n:02}")), &noise(n), 0o644);
    }
    write(&root.join("big"), &noise(3 * 1024 * 1024 + 5), 0o644);
    symlink("/etc/passwd", root.join("link-abs")).unwrap();
    symlink("../x/y z", root.join("link-rel")).unwrap();
    symlink("does-not-exist", root.join("dangling")).unwrap();
    symlink(".", root.join("link-self")).unwrap();
    fs::create_dir(root.join("emptydir")).unwrap();
    fs::create_dir_all(root.join("nested/a/b/c")).unwrap();
    write(&root.join("nested/a/b/c/deep"), b"deep\n", 0o644);
    symlink("../../..", root.join("nested/a/b/up")).unwrap();
    // Byte order differs from locale collation for these (case, punctuation, UTF-8, non-UTF-8).
    let names: [&[u8]; 12] = [
        b"B",
        b"a",
        b"Z",
        b"_under",
        b"-dash",
        b".hidden",
        b"10",
        b"9",
        "\u{e4}".as_bytes(),
        "\u{c4}".as_bytes(),
        b"\xff\xfe",
        b"a b",
    ];
    let sorted = root.join("sorting");
    fs::create_dir(&sorted).unwrap();
    for n in names {
        write(&sorted.join(OsStr::from_bytes(n)), n, 0o644);
    }
    fs::set_permissions(root.join("nested/a"), fs::Permissions::from_mode(0o555)).unwrap();
}

#[test]
fn varied_tree_matches_nix_store_dump() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    build_varied_tree(&root);
    let h = assert_same_as_nix(&root);
    assert!(h.size > 3 * 1024 * 1024);
    // Sub-objects too: a directory, a regular and an executable file, a symlink (not followed).
    for sub in [
        "nested", "big", "exe", "empty", "link-abs", "dangling", "emptydir", "sorting",
    ] {
        assert_same_as_nix(&root.join(sub));
    }
    fs::set_permissions(root.join("nested/a"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn top_level_symlink_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("dir")).unwrap();
    write(&tmp.path().join("dir/f"), b"content", 0o644);
    let link = tmp.path().join("link");
    symlink(tmp.path().join("dir"), &link).unwrap();
    let (bytes, _) = our_dump(&link);
    assert!(!bytes.windows(7).any(|w| w == b"content"));
    assert!(bytes.windows(7).any(|w| w == b"symlink"));
    assert_same_as_nix(&link);
}

#[test]
fn nix_functional_test_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let hi = tmp.path().join("hi");
    write(&hi, b"hi\n", 0o644);
    let h = hash_path(&hi).unwrap();
    assert_eq!(
        h.to_nix32(),
        "1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h"
    );
    assert_eq!(h.to_nix_string(), format!("sha256:{}", h.to_nix32()));
    assert_eq!(h.to_hex(), hex::encode(h.sha256));

    // `nix-store --add hi` → /nix/store/a1ps36f9hgswz9k0s9hxkywj2vbz7ibx-hi (source store path).
    let fp = format!("source:sha256:{}:{STORE_DIR}:hi", h.to_hex());
    let full = Sha256::digest(fp.as_bytes());
    let mut folded = [0u8; 20];
    full.iter()
        .enumerate()
        .for_each(|(i, b)| folded[i % 20] ^= b);
    assert_eq!(nix32_encode(&folded), "a1ps36f9hgswz9k0s9hxkywj2vbz7ibx");

    let link = tmp.path().join("link");
    symlink("/non-existent-48cujwe8ndf4as0bne", &link).unwrap();
    assert_eq!(
        hash_path(&link).unwrap().to_nix32(),
        "1bl5ry3x1fcbwgr5c2x50bn572iixh4j1p6ax5isxly2ddgn8pbp"
    );

    let dir = tmp.path().join("dir");
    fs::create_dir(&dir).unwrap();
    write(&dir.join("hello"), b"Hello World\n", 0o644);
    assert_eq!(md5_of_dump(&dir), "ea9b55537dd4c7e104515b2ccfaf4100");
    fs::set_permissions(dir.join("hello"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(md5_of_dump(&dir), "20f3ffe011d4cfa7d72bfabef7882836");
}

/// md5 of our NAR via coreutils `md5sum` (the vectors are md5; the crate has no md5).
fn md5_of_dump(path: &Path) -> String {
    let (bytes, _) = our_dump(path);
    let tmp = tempfile::NamedTempFile::new().unwrap();
    fs::write(tmp.path(), &bytes).unwrap();
    let out = Command::new("md5sum").arg(tmp.path()).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..32].to_owned()
}

#[test]
fn special_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("sock");
    let _sock = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let err = hash_path(&sock_path).unwrap_err();
    assert!(err.to_string().contains("unsupported file type"), "{err}");
    assert!(hash_path(&tmp.path().join("missing")).is_err());
}
