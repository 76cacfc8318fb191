//! The packer never destroys an input: each bad command line runs against a work directory whose
//! whole tree is snapshotted before and after, and a refused or failed command must leave it
//! byte-identical (no overwritten key, no `*.partial`, no half-made updater directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use liminix_tests::tree::snapshot;

const TOP: &str = "/nix/store/3wlx5g1j0cgw2bq9hbs3wbkzrk8x6ph5-system-configuration-x86_64";
const DEP: &str = "/nix/store/0c4ky3v7n7yrm8p3pg9hfw1mbsx8jxjz-busybox-1.36.1";

fn pack<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liminix-pack"))
        .args(args)
        .output()
        .expect("run liminix-pack")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A work directory with a key pair, a firmware image and a store holding TOP and DEP.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::tempdir().unwrap();
        let w = Work { dir };
        let o = pack(&[
            "keygen",
            "--secret",
            &w.p("k.sec"),
            "--public",
            &w.p("k.pub"),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        std::fs::write(w.path("fw.img"), vec![0x5Au8; 70_000]).unwrap();
        let store = |p: &str| w.path(&format!("store{p}"));
        std::fs::create_dir_all(store(TOP).join("etc")).unwrap();
        std::fs::write(store(TOP).join("etc/nix-store-paths"), format!("{DEP}\n")).unwrap();
        std::fs::create_dir_all(store(TOP).join("bin")).unwrap();
        std::fs::write(store(TOP).join("bin/activate"), b"#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(store(DEP).join("bin")).unwrap();
        std::fs::write(store(DEP).join("bin/busybox"), b"not really busybox").unwrap();
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn p(&self, rel: &str) -> String {
        self.path(rel).to_string_lossy().into_owned()
    }

    /// Runs the packer and checks that it fails and that the work directory did not change.
    fn refused<S: AsRef<std::ffi::OsStr>>(&self, what: &str, args: &[S], words: &str) {
        let before = snapshot(self.dir.path());
        let o = pack(args);
        assert!(!o.status.success(), "{what}: accepted");
        assert!(text(&o).contains(words), "{what}: {}", text(&o));
        before.assert_same(&snapshot(self.dir.path()), what);
    }

    fn bundle_args(&self, out: &str) -> Vec<String> {
        let (key, store) = (self.p("k.sec"), self.p("store"));
        let image = format!("firmware={}", self.p("fw.img"));
        [
            "bundle",
            "--key",
            &key,
            "--board",
            "vm-nor",
            "--store-root",
            &store,
            "--toplevel",
            TOP,
            "--image",
            &image,
            "--level",
            "1",
            "--out",
            out,
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

#[test]
fn keygen_never_replaces_a_key_and_makes_both_halves_or_neither() {
    let w = Work::new();
    let (sec, public) = (w.p("k.sec"), w.p("k.pub"));
    let (new_sec, new_pub) = (w.p("n.sec"), w.p("n.pub"));
    w.refused(
        "keygen over a secret key",
        &["keygen", "--secret", &sec, "--public", &new_pub],
        "never overwritten",
    );
    w.refused(
        "keygen over a public key",
        &["keygen", "--secret", &new_sec, "--public", &public],
        "never overwritten",
    );
    w.refused(
        "keygen with one file for both halves",
        &["keygen", "--secret", &new_sec, "--public", &new_sec],
        "two files",
    );
    w.refused(
        "keygen with the public half in a missing directory",
        &[
            "keygen",
            "--secret",
            &new_sec,
            "--public",
            &w.p("nowhere/n.pub"),
        ],
        "nowhere",
    );
    let o = pack(&["keygen", "--secret", &new_sec, "--public", &new_pub]);
    assert!(o.status.success(), "{}", text(&o));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&new_sec).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the secret key is for its owner only");
}

#[test]
fn a_bundle_is_never_written_over_an_input_or_a_key() {
    let w = Work::new();
    let other = w.p("other.sec");
    assert!(
        pack(&["keygen", "--secret", &other, "--public", &w.p("other.pub")])
            .status
            .success()
    );
    std::os::unix::fs::symlink(w.path("k.sec"), w.path("key-link")).unwrap();
    std::fs::hard_link(w.path("fw.img"), w.path("fw-again.img")).unwrap();
    std::os::unix::fs::symlink(w.path("store"), w.path("store-link")).unwrap();
    let inside = format!("{}{TOP}/etc/x.bundle", w.p("store-link"));
    let cases = [
        ("--out the signing key", w.p("k.sec"), "it is the input"),
        (
            "--out a link to the key",
            w.p("key-link"),
            "it is the input",
        ),
        ("--out the image", w.p("fw.img"), "it is the input"),
        (
            "--out a second name of the image",
            w.p("fw-again.img"),
            "it is the input",
        ),
        ("--out inside the toplevel", inside, "it is the input"),
        ("--out another secret key", other, "it is a secret key"),
    ];
    for (what, out, words) in &cases {
        w.refused(what, &w.bundle_args(out), words);
    }
}

#[test]
fn a_failed_bundle_leaves_no_partial_file() {
    let w = Work::new();
    let out = w.p("sys.bundle");
    let mut args = w.bundle_args(&out);
    // A board that has no image called firmware: refused after the inputs were read.
    let board = args.iter().position(|a| *a == "vm-nor").unwrap();
    args[board] = "qemu".into();
    w.refused("an image the board lacks", &args, "");
    let good = w.bundle_args(&out);
    let r = pack(&good);
    assert!(r.status.success(), "{}", text(&r));
    // Once it exists, a refused rerun keeps the earlier bundle as it was.
    w.refused("an image the board lacks, over a bundle", &args, "");
}

fn updater_args(w: &Work, key: &str, out: &str) -> Vec<String> {
    let store = w.p("store");
    [
        "updater",
        "--key",
        key,
        "--board",
        "qemu",
        "--store-root",
        &store,
        "--toplevel",
        TOP,
        "--level",
        "1",
        "--out",
        out,
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn updater_directories_are_whole_or_not_there() {
    let w = Work::new();
    let key = w.p("k.sec");
    let out = w.p("up");
    std::fs::write(w.path("garbage.sec"), b"not a key").unwrap();
    let garbage = w.p("garbage.sec");
    w.refused("an unreadable key", &updater_args(&w, &garbage, &out), "");
    w.refused(
        "--out the directory holding the key",
        &updater_args(&w, &key, &w.p("")),
        "is inside it",
    );
    std::fs::create_dir(w.path("mine")).unwrap();
    std::fs::write(w.path("mine/notes.txt"), b"keep me").unwrap();
    w.refused(
        "--out a directory of other files",
        &updater_args(&w, &key, &w.p("mine")),
        "does not make",
    );
    let r = pack(&updater_args(&w, &key, &out));
    assert!(r.status.success(), "{}", text(&r));
    let first = snapshot(w.path("up").as_path());
    assert!(w.path("up/bin/update.sh").is_file() && w.path("up/bin/liminix-update").is_file());
    w.refused(
        "an unreadable key over an updater",
        &updater_args(&w, &garbage, &out),
        "",
    );
    let r = pack(&updater_args(&w, &key, &out));
    assert!(
        r.status.success(),
        "a rerun replaces the updater: {}",
        text(&r)
    );
    assert_eq!(first.len(), snapshot(w.path("up").as_path()).len());
    let leftovers: Vec<_> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(Path::new(&key).is_file());
}
