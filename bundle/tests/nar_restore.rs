//! `restore`, `verify_stream` and `remove_tree`: roundtrips, store-like modes, exact stream
//! consumption and hostile archives.

use std::fs;
use std::io::{Cursor, Read};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use liminix_bundle::nar::{
    dump, hash_path, remove_tree, restore, verify_stream, NarError, NarHash, RestoreOptions,
};

/// Hand-built NAR pieces, so malformed archives can be made.
fn s(bytes: &[u8]) -> Vec<u8> {
    let mut v = (bytes.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(bytes);
    v.resize(v.len().div_ceil(8) * 8, 0);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.iter().flat_map(|p| s(p)).collect()
}

fn file_node(contents: &[u8]) -> Vec<u8> {
    cat(&[b"(", b"type", b"regular", b"contents", contents, b")"])
}

fn symlink_node(target: &[u8]) -> Vec<u8> {
    cat(&[b"(", b"type", b"symlink", b"target", target, b")"])
}

fn dir_node(entries: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut v = cat(&[b"(", b"type", b"directory"]);
    for (name, node) in entries {
        v.extend(cat(&[b"entry", b"(", b"name", name, b"node"]));
        v.extend_from_slice(node);
        v.extend(s(b")"));
    }
    v.extend(s(b")"));
    v
}

fn nar(node: &[u8]) -> Vec<u8> {
    let mut v = s(b"nix-archive-1");
    v.extend_from_slice(node);
    v
}

const NO_LIMIT: RestoreOptions = RestoreOptions { max_size: None };

fn dump_vec(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    dump(path, &mut v).unwrap();
    v
}

fn build_tree(root: &Path) {
    fs::create_dir(root).unwrap();
    fs::write(root.join("file"), b"hello\n").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("exe"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("exe"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("big"), vec![0x5a; 1024 * 1024 + 3]).unwrap();
    symlink("/etc/passwd", root.join("abs")).unwrap();
    symlink("../nowhere", root.join("dangling")).unwrap();
    fs::create_dir_all(root.join("d/e/f")).unwrap();
    fs::create_dir(root.join("emptydir")).unwrap();
    fs::write(root.join("d/e/f/g"), b"g").unwrap();
    fs::write(root.join("d/\u{e4}"), b"umlaut").unwrap();
    fs::write(root.join("d/Z"), b"Z").unwrap();
}

#[test]
fn roundtrip_gives_identical_nar_and_store_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    let bytes = dump_vec(&src);
    let dest = tmp.path().join("dest");
    let h = restore(&mut Cursor::new(&bytes), &dest, &NO_LIMIT).unwrap();
    assert_eq!(h, hash_path(&src).unwrap());
    assert_eq!(h.size, bytes.len() as u64);
    assert!(dump_vec(&dest) == bytes, "dump(restore(nar)) differs");

    let mode = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("file"), 0o444);
    assert_eq!(mode("empty"), 0o444);
    assert_eq!(mode("exe"), 0o555);
    assert_eq!(mode("d"), 0o555);
    assert_eq!(mode("d/e/f"), 0o555);
    assert_eq!(mode("emptydir"), 0o555);
    assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o7777, 0o555);
    for p in [
        "", "file", "exe", "d", "d/e/f/g", "abs", "dangling", "emptydir",
    ] {
        assert_eq!(
            fs::symlink_metadata(dest.join(p)).unwrap().mtime(),
            1,
            "mtime of {p:?}"
        );
    }
    assert_eq!(
        fs::read_link(dest.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(fs::read(dest.join("big")).unwrap().len(), 1024 * 1024 + 3);

    remove_tree(&dest).unwrap();
    assert!(fs::symlink_metadata(&dest).is_err());
    remove_tree(&dest).unwrap(); // missing is fine
}

#[test]
fn top_level_file_and_symlink_roundtrip() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, node) in [
        ("f", file_node(b"abc")),
        ("l", symlink_node(b"/somewhere/else")),
        (
            "x",
            cat(&[
                b"(",
                b"type",
                b"regular",
                b"executable",
                b"",
                b"contents",
                b"#!",
                b")",
            ]),
        ),
    ] {
        let bytes = nar(&node);
        let dest = tmp.path().join(name);
        let h = restore(&mut Cursor::new(&bytes), &dest, &NO_LIMIT).unwrap();
        assert_eq!(dump_vec(&dest), bytes);
        assert_eq!(h, hash_path(&dest).unwrap());
        assert_eq!(
            verify_stream(&mut Cursor::new(&bytes), &NO_LIMIT).unwrap(),
            h
        );
    }
    assert_eq!(
        fs::metadata(tmp.path().join("x")).unwrap().mode() & 0o7777,
        0o555
    );
}

#[test]
fn stops_exactly_at_the_end_of_the_nar() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    let nar_bytes = dump_vec(&src);
    let mut stream = nar_bytes.clone();
    stream.extend_from_slice(b"TRAILER-after-the-nar");
    stream.extend_from_slice(&nar_bytes); // a second NAR follows

    let mut cur = Cursor::new(&stream);
    let h1 = restore(&mut cur, &tmp.path().join("one"), &NO_LIMIT).unwrap();
    assert_eq!(cur.position(), nar_bytes.len() as u64);
    let mut trailer = [0u8; 21];
    cur.read_exact(&mut trailer).unwrap();
    assert_eq!(&trailer, b"TRAILER-after-the-nar");
    let h2 = verify_stream(&mut cur, &NO_LIMIT).unwrap();
    assert_eq!(h1, h2);
    assert_eq!(cur.position(), stream.len() as u64);
}

fn restore_err(bytes: &[u8], dest: &Path) -> NarError {
    let r = restore(&mut Cursor::new(bytes), dest, &NO_LIMIT);
    let v = verify_stream(&mut Cursor::new(bytes), &NO_LIMIT);
    assert!(
        v.is_err(),
        "verify_stream accepted what restore must reject"
    );
    r.expect_err("hostile NAR accepted")
}

#[test]
fn rejects_bad_names() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [&b".."[..], b".", b"", b"a/b", b"a\0b", b"/etc"] {
        let bytes = nar(&dir_node(&[(name, file_node(b"x"))]));
        let dest = tmp.path().join("dest");
        let err = restore_err(&bytes, &dest);
        assert!(matches!(err, NarError::BadName { .. }), "{name:?}: {err}");
        remove_tree(&dest).unwrap();
    }
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn rejects_unsorted_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = nar(&dir_node(&[
        (b"b", file_node(b"1")),
        (b"a", file_node(b"2")),
    ]));
    let err = restore_err(&bytes, &tmp.path().join("dest"));
    assert!(matches!(err, NarError::Unsorted { .. }), "{err}");
    // Locale order ("a" < "B") is not byte order.
    let bytes = nar(&dir_node(&[
        (b"a", file_node(b"1")),
        (b"B", file_node(b"2")),
    ]));
    let err = restore_err(&bytes, &tmp.path().join("dest2"));
    assert!(matches!(err, NarError::Unsorted { .. }), "{err}");
}

#[test]
fn duplicate_symlink_then_directory_cannot_write_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let target = outside.to_str().unwrap().as_bytes().to_vec();
    let bytes = nar(&dir_node(&[
        (b"x", symlink_node(&target)),
        (b"x", dir_node(&[(b"pwned", file_node(b"gotcha"))])),
    ]));
    let dest = tmp.path().join("dest");
    let err = restore_err(&bytes, &dest);
    assert!(matches!(err, NarError::Unsorted { .. }), "{err}");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside dest"
    );
    // The directory entry must not follow a symlink even where the sorting check is not involved:
    // a top-level restore onto an existing symlink is refused.
    let link = tmp.path().join("link");
    symlink(&outside, &link).unwrap();
    let bytes = nar(&dir_node(&[(b"pwned", file_node(b"gotcha"))]));
    let err = restore(&mut Cursor::new(&bytes), &link, &NO_LIMIT).unwrap_err();
    assert!(matches!(err, NarError::BadDestination { .. }), "{err}");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside dest"
    );
    remove_tree(&dest).unwrap();
    remove_tree(&link).unwrap();
    assert!(outside.is_dir(), "remove_tree followed a symlink");
}

#[test]
fn every_truncation_is_detected() {
    let bytes = nar(&dir_node(&[
        (b"a", file_node(b"hello world")),
        (b"b", symlink_node(b"a")),
        (b"c", dir_node(&[])),
    ]));
    let tmp = tempfile::tempdir().unwrap();
    for len in 0..bytes.len() {
        let err = verify_stream(&mut Cursor::new(&bytes[..len]), &NO_LIMIT).unwrap_err();
        assert!(
            matches!(err, NarError::Truncated { .. }),
            "cut at {len}: {err}"
        );
    }
    let dest = tmp.path().join("dest");
    let err = restore(
        &mut Cursor::new(&bytes[..bytes.len() - 9]),
        &dest,
        &NO_LIMIT,
    )
    .unwrap_err();
    assert!(matches!(err, NarError::Truncated { .. }), "{err}");
    remove_tree(&dest).unwrap();
    assert!(verify_stream(&mut Cursor::new(&bytes), &NO_LIMIT).is_ok());
}

#[test]
fn max_size_is_enforced_before_writing() {
    let bytes = nar(&file_node(&vec![7u8; 100_000]));
    let len = bytes.len() as u64;
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f");
    let tight = RestoreOptions {
        max_size: Some(len - 1),
    };
    let err = restore(&mut Cursor::new(&bytes), &dest, &tight).unwrap_err();
    assert!(matches!(err, NarError::TooLarge { .. }), "{err}");
    assert!(
        fs::symlink_metadata(&dest).is_err(),
        "oversized file was created"
    );
    // Nested: the file is refused before it is created when its contents cannot fit.
    let nested = nar(&dir_node(&[(b"f", file_node(&vec![7u8; 100_000]))]));
    let small = RestoreOptions {
        max_size: Some(50_000),
    };
    let dir = tmp.path().join("dir");
    let err = restore(&mut Cursor::new(&nested), &dir, &small).unwrap_err();
    assert!(matches!(err, NarError::TooLarge { .. }), "{err}");
    assert!(
        fs::symlink_metadata(dir.join("f")).is_err(),
        "oversized file was created"
    );
    remove_tree(&dir).unwrap();
    let exact = RestoreOptions {
        max_size: Some(len),
    };
    let h: NarHash = restore(&mut Cursor::new(&bytes), &dest, &exact).unwrap();
    assert_eq!(h.size, len);
    let err = verify_stream(
        &mut Cursor::new(&bytes),
        &RestoreOptions { max_size: Some(64) },
    );
    assert!(matches!(err, Err(NarError::TooLarge { .. })));
}

#[test]
fn rejects_malformed_framing() {
    let good = nar(&file_node(b"abc"));
    let check = |bytes: &[u8], what: &str, ok: fn(&NarError) -> bool| {
        let err = verify_stream(&mut Cursor::new(bytes), &NO_LIMIT).unwrap_err();
        assert!(ok(&err), "{what}: {err}");
    };
    let mut bad_magic = good.clone();
    bad_magic[8] = b'N';
    check(&bad_magic, "magic", |e| matches!(e, NarError::BadMagic));

    let mut bad_pad = good.clone();
    let last_pad = good.len() - 16 - 1; // padding byte of "abc" before ")"
    bad_pad[last_pad] = 1;
    check(&bad_pad, "padding", |e| {
        matches!(e, NarError::BadPadding { .. })
    });

    let fifo = nar(&cat(&[b"(", b"type", b"fifo", b")"]));
    check(&fifo, "type", |e| {
        matches!(e, NarError::UnexpectedToken { .. })
    });

    let no_contents = nar(&cat(&[b"(", b"type", b"regular", b")"]));
    check(&no_contents, "contents", |e| {
        matches!(e, NarError::UnexpectedToken { .. })
    });

    let mut huge = s(b"nix-archive-1");
    huge.extend(u64::MAX.to_le_bytes());
    check(&huge, "huge token", |e| {
        matches!(e, NarError::TooLong { .. })
    });

    let long_name = vec![b'n'; 256];
    let bytes = nar(&dir_node(&[(&long_name, file_node(b""))]));
    check(&bytes, "long name", |e| {
        matches!(e, NarError::TooLong { .. })
    });

    let bytes = nar(&symlink_node(b""));
    check(&bytes, "empty target", |e| {
        matches!(e, NarError::BadSymlinkTarget { .. })
    });

    let mut deep = file_node(b"bottom");
    for _ in 0..300 {
        deep = dir_node(&[(b"d", deep)]);
    }
    check(&nar(&deep), "depth", |e| {
        matches!(e, NarError::TooDeep { .. })
    });
}

#[test]
fn destination_must_not_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = nar(&file_node(b"abc"));
    fs::write(tmp.path().join("exists"), b"keep").unwrap();
    let err = restore(
        &mut Cursor::new(&bytes),
        &tmp.path().join("exists"),
        &NO_LIMIT,
    );
    assert!(matches!(err, Err(NarError::BadDestination { .. })));
    assert_eq!(fs::read(tmp.path().join("exists")).unwrap(), b"keep");
    let err = restore(
        &mut Cursor::new(&bytes),
        &tmp.path().join("no/parent"),
        &NO_LIMIT,
    );
    assert!(matches!(err, Err(NarError::Fs { .. })));
}

#[test]
fn remove_tree_handles_read_only_trees_without_following_links() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("keep");
    fs::create_dir(&keep).unwrap();
    fs::write(keep.join("precious"), b"1").unwrap();
    let t = tmp.path().join("t");
    fs::create_dir_all(t.join("a/b")).unwrap();
    fs::write(t.join("a/b/f"), b"x").unwrap();
    symlink(&keep, t.join("a/link")).unwrap();
    for d in ["a/b", "a", ""] {
        fs::set_permissions(t.join(d), fs::Permissions::from_mode(0o555)).unwrap();
    }
    remove_tree(&t).unwrap();
    assert!(fs::symlink_metadata(&t).is_err());
    assert_eq!(fs::read(keep.join("precious")).unwrap(), b"1");
    // A symlink given directly is removed, its target kept.
    let l = tmp.path().join("l");
    symlink(&keep, &l).unwrap();
    remove_tree(&l).unwrap();
    assert!(keep.join("precious").exists());
}

#[test]
fn corrupted_bytes_never_panic_or_escape() {
    // Hundreds of small restores: use tmpfs when there is one, a disk is slow at this.
    let tmp = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let good = nar(&dir_node(&[
        (b"a", file_node(b"hello")),
        (b"b", symlink_node(outside.to_str().unwrap().as_bytes())),
        (b"c", dir_node(&[(b"d", file_node(b""))])),
    ]));
    for pos in 0..good.len() {
        for flip in [0x01u8, 0x80] {
            let mut bytes = good.clone();
            bytes[pos] ^= flip;
            let dest = tmp.path().join("dest");
            let restored = restore(&mut Cursor::new(&bytes), &dest, &NO_LIMIT);
            let verified = verify_stream(&mut Cursor::new(&bytes), &NO_LIMIT);
            assert_eq!(restored.is_ok(), verified.is_ok(), "byte {pos} ^ {flip:#x}");
            remove_tree(&dest).unwrap();
            assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        }
    }
}
