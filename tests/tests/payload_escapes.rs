//! Hostile payloads that carry a valid signature: the trusted signer's build machine was fooled, or
//! the key leaked. The device must still never write outside its store, and must change nothing.

use std::fs;
use std::path::Path;
use std::process::Output;

use liminix_bundle::stream::Encoding;
use liminix_bundle::wire::{AgentEvent, ErrorKind};
use liminix_bundle::SecretKey;
use liminix_tests::crafted::{self, nar_string as s};
use liminix_tests::lab::{text, Lab};
use sha2::{Digest, Sha256};

fn words(out: &mut Vec<u8>, ws: &[&[u8]]) {
    for w in ws {
        s(out, w);
    }
}

fn file_node(out: &mut Vec<u8>, contents: &[u8]) {
    words(
        out,
        &[b"(", b"type", b"regular", b"contents", contents, b")"],
    );
}

fn symlink_node(out: &mut Vec<u8>, target: &[u8]) {
    words(out, &[b"(", b"type", b"symlink", b"target", target, b")"]);
}

/// A directory NAR from (name, node bytes) pairs, in the order given (even if wrong).
fn dir_nar(entries: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    s(&mut out, b"nix-archive-1");
    out.extend_from_slice(&dir_node(entries));
    out
}

/// A directory node from (name, node bytes) pairs, in the order given (even if wrong).
fn dir_node(entries: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    words(&mut out, &[b"(", b"type", b"directory"]);
    for (name, node) in entries {
        words(&mut out, &[b"entry", b"(", b"name", name, b"node"]);
        out.extend_from_slice(node);
        s(&mut out, b")");
    }
    s(&mut out, b")");
    out
}

/// A signed bundle whose only path is `TOP`, with the NAR given and an honest hash of it, or
/// raw manifest bytes when `manifest_json` is set.
fn bundle(lab: &Lab, nar: &[u8], manifest_json: Option<&str>) -> std::path::PathBuf {
    let key = SecretKey::load(&lab.secret).unwrap();
    let m = crafted::one_path(Sha256::digest(nar).into(), nar.len() as u64, 8);
    let manifest_bytes = manifest_json.map_or_else(|| m.to_bytes(), |j| j.as_bytes().to_vec());
    let out = crafted::signed(&key, m, manifest_bytes, &[(0, Encoding::Raw, nar)]);
    let path = lab.host.path().join(format!(
        "evil-{}.bundle",
        hex::encode(&Sha256::digest(&out)[..4])
    ));
    fs::write(&path, out).unwrap();
    path
}

fn tree(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir);
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).unwrap().map(|e| e.unwrap()) {
        let meta = fs::symlink_metadata(e.path()).unwrap();
        v.push(format!("{} {}", e.path().display(), meta.len()));
        if meta.is_dir() {
            v.extend(walk(&e.path()));
        }
    }
    v
}

/// The kind of the agent's `error` event, if it sent one.
fn error_kind(o: &Output) -> Option<ErrorKind> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| match AgentEvent::from_line(l) {
            Ok(AgentEvent::Error { kind, .. }) => Some(kind),
            _ => None,
        })
}

fn assert_refused(lab: &Lab, bundle: &Path, code: i32, kind: ErrorKind, words: &str) {
    let before = tree(lab.device.root());
    let o = lab.receive_file(bundle, "--no-reboot");
    assert_eq!(o.status.code(), Some(code), "{}", text(&o));
    assert_eq!(error_kind(&o), Some(kind), "{}", text(&o));
    assert!(
        text(&o).contains(words),
        "expected {words:?} in: {}",
        text(&o)
    );
    let after: Vec<String> = tree(lab.device.root())
        .into_iter()
        .filter(|l| !l.contains("/run/"))
        .collect();
    let before: Vec<String> = before
        .into_iter()
        .filter(|l| !l.contains("/run/"))
        .collect();
    let added: Vec<&String> = after
        .iter()
        .filter(|l| !before.contains(l) && !l.contains(".liminix"))
        .collect();
    assert!(added.is_empty(), "the refused bundle left {added:?}");
}

fn good_toplevel_entries() -> Vec<(&'static [u8], Vec<u8>)> {
    let mut bin = Vec::new();
    file_node(&mut bin, b"#!/bin/sh\n");
    vec![(b"bin", bin)]
}

#[test]
fn dot_dot_names_are_refused() {
    let lab = Lab::new();
    let mut f = Vec::new();
    file_node(&mut f, b"pwned\n");
    for name in [&b".."[..], b".", b"../etc", b"a/../../x"] {
        let nar = dir_nar(&[(name, f.clone())]);
        assert_refused(
            &lab,
            &bundle(&lab, &nar, None),
            3,
            ErrorKind::Payload,
            "failed verification",
        );
    }
    assert!(!lab.device.path("etc/pwned").exists() && !lab.device.path("nix/x").exists());
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let lab = Lab::new();
    let passwd = fs::read(lab.device.path("etc/passwd")).unwrap();
    let mut link = Vec::new();
    symlink_node(&mut link, b"/etc");
    let mut node = Vec::new();
    file_node(&mut node, b"root::0:0::/:/bin/sh\n");
    let inner = dir_node(&[(b"passwd", node)]);
    // "etc" as a symlink to /etc, then "etc" again as a directory holding passwd.
    let nar = dir_nar(&[(b"etc", link.clone()), (b"etc", inner)]);
    assert_refused(
        &lab,
        &bundle(&lab, &nar, None),
        3,
        ErrorKind::Payload,
        "failed verification",
    );
    // A relative link climbing out, then a file under the same name.
    let mut up = Vec::new();
    symlink_node(&mut up, b"../../../etc");
    let mut f = Vec::new();
    file_node(&mut f, b"x");
    let nar = dir_nar(&[(b"e", up), (b"e", f)]);
    assert_refused(
        &lab,
        &bundle(&lab, &nar, None),
        3,
        ErrorKind::Payload,
        "failed verification",
    );
    assert_eq!(fs::read(lab.device.path("etc/passwd")).unwrap(), passwd);
}

#[test]
fn a_manifest_path_outside_the_store_is_refused() {
    let lab = Lab::new();
    let nar = dir_nar(&good_toplevel_entries());
    let evil = format!(
        r#"{{"format":1,"board":"qemu","generation":{{"toplevel":"/nix/store/../../etc/x","build_time":1}},"epoch":0,"paths":[{{"path":"/nix/store/../../etc/x","nar_sha256":"{}","nar_size":{},"entries":1}}]}}"#,
        hex::encode(Sha256::digest(&nar)),
        nar.len()
    );
    assert_refused(
        &lab,
        &bundle(&lab, &nar, Some(&evil)),
        3,
        ErrorKind::Corrupt,
        "invalid store path",
    );
}

#[test]
fn an_activate_link_leaving_the_store_is_not_installed() {
    let lab = Lab::new();
    // A well-formed toplevel whose bin/activate points at the device's /etc/passwd.
    let mut node = Vec::new();
    symlink_node(&mut node, b"/etc/passwd");
    let bin = dir_node(&[(b"activate", node)]);
    let mut node = Vec::new();
    file_node(&mut node, b"");
    let etc = dir_node(&[(b"nix-store-paths", node)]);
    let nar = dir_nar(&[(b"bin", bin), (b"etc", etc)]);
    let o = lab.receive_file(&bundle(&lab, &nar, None), "--no-reboot");
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(error_kind(&o), Some(ErrorKind::State), "{}", text(&o));
    assert!(text(&o).contains("not a file in the store"), "{}", text(&o));
    assert!(
        fs::symlink_metadata(lab.device.path("persist/activate")).is_err(),
        "no generation installed"
    );
    assert!(
        fs::read_dir(lab.device.path("persist/generations")).map_or(true, |d| d
            .filter(|e| e.as_ref().unwrap().file_name() != "epoch")
            .count()
            == 0)
    );
}
