//! A version bump received as an `LXP1` patch (encoding 3): the agent offers the older build of
//! the same package (matched on the name without its version, not another output), decodes the
//! patch against that store path's NAR streamed front to back, and installs a path whose NAR
//! hash is the signed manifest's. A patch against a base it did not offer, or made against other
//! contents than its base holds, is refused and nothing is installed.

use std::io::{Cursor, Write};
use std::path::Path;

use liminix_agent::closure::receive::{receive, Events, ReceiveOptions};
use liminix_agent::error::ErrorKind;
use liminix_agent::root::DeviceRoot;
use liminix_build_tools::pack::{index, write_bundle, PackOptions};
use liminix_bundle::stream::{write_end, ChunkWriter, Encoding, EntryHeader, EntryKind};
use liminix_bundle::wire::AgentEvent;
use liminix_bundle::{delta_patch, nar, SecretKey};
use liminix_testdata::{code_like, tenth_changed};

const TOP: &str = "/nix/store/3wlx5g1j0cgw2bq9hbs3wbkzrk8x6ph5-system-configuration-x86_64";
const NEW: &str = "0c4ky3v7n7yrm8p3pg9hfw1mbsx8jxjz-libfoo-1.1";
const OLD: &str = "1d5lz4w8p8zsn9q4qh0ig2ncsy9kyk0a-libfoo-1.0";
const OLDER: &str = "2f6m05x9q90vp0r5ri1jh3pdvz0lzl1b-libfoo-0.9";
const OTHER_OUTPUT: &str = "3g7n16y0r01wq1s6sj2kj4qfw01m0m2c-libfoo-1.0-dev";

/// A library at two releases: the same bytes with a tenth rewritten and 20 KiB inserted.
fn library(release: u64) -> Vec<u8> {
    let mut lib = code_like(42, 3 << 20);
    if release > 0 {
        lib = tenth_changed(&lib, release);
        lib.splice(100_000..100_000, code_like(release, 20_000));
    }
    lib
}

fn store_path(store: &Path, base: &str, lib: &[u8]) {
    let dir = store.join(base).join("lib");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("libfoo.so"), lib).unwrap();
}

fn build_store(dir: &Path) {
    let top = dir.join(TOP.trim_start_matches('/'));
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(
        top.join("etc/nix-store-paths"),
        format!("/nix/store/{NEW}\n"),
    )
    .unwrap();
    std::fs::create_dir_all(top.join("bin")).unwrap();
    for f in ["activate", "init"] {
        std::fs::write(top.join("bin").join(f), b"#!/bin/sh\n").unwrap();
    }
    store_path(&dir.join("nix/store"), NEW, &library(1));
    store_path(&dir.join("nix/store"), OLD, &library(0));
}

fn device(dir: &Path, key: &SecretKey) -> DeviceRoot {
    let root = DeviceRoot::new(dir);
    std::fs::create_dir_all(root.join("/etc/liminix/trusted-keys")).unwrap();
    std::fs::create_dir_all(root.join("/persist")).unwrap();
    std::fs::write(root.board_name(), "vm-nor\n").unwrap();
    let public = root.join("/etc/liminix/trusted-keys/k.pub");
    std::fs::write(public, key.public().to_file_text()).unwrap();
    let store = root.store();
    store_path(&store, OLD, &library(0));
    store_path(&store, OLDER, &code_like(1, 1000));
    store_path(&store, OTHER_OUTPUT, &library(0)[..50_000]);
    root
}

/// The bundle's header and the toplevel's entry as packed, then NEW as a patch against `base`'s
/// NAR named `named`.
fn stream(build: &Path, key: &SecretKey, named: &str, base: &Path) -> (Vec<u8>, u64, usize) {
    let opts = PackOptions {
        store_root: build,
        toplevel: Some(TOP),
        board: "vm-nor",
        epoch: 0,
        build_time: 1,
        level: 19,
        images: &[],
        board_def: None,
        raw_images: false,
    };
    let file = build.join("b.bundle");
    write_bundle(&opts, key, &file, &|_, _| {}).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let (header, entries) = index(&file).unwrap();
    let new_index = header
        .manifest
        .paths
        .iter()
        .position(|p| p.path.ends_with(NEW))
        .unwrap() as u32;
    let mut out = bytes[..entries[0].offset as usize].to_vec();
    let mut whole = 0;
    for e in &entries {
        if e.header.index == new_index {
            whole = e.len;
        } else {
            out.extend_from_slice(&bytes[e.offset as usize..(e.offset + e.len) as usize]);
        }
    }
    let (mut base_nar, mut new_nar) = (Vec::new(), Vec::new());
    nar::dump(base, &mut base_nar).unwrap();
    nar::dump(&build.join("nix/store").join(NEW), &mut new_nar).unwrap();
    let patch = delta_patch::encode(&base_nar, &new_nar, 19).unwrap();
    let start = out.len();
    EntryHeader {
        kind: EntryKind::StorePath,
        index: new_index,
        encoding: Encoding::Patch { base: named.into() },
    }
    .write(&mut out)
    .unwrap();
    let mut w = ChunkWriter::new(out);
    w.write_all(&patch).unwrap();
    let mut out = w.finish().unwrap();
    let sent = out.len() - start;
    write_end(&mut out).unwrap();
    (out, whole, sent)
}

fn run(root: &DeviceRoot, input: &[u8]) -> (Result<bool, (ErrorKind, String)>, Vec<AgentEvent>) {
    let mut events = Vec::new();
    let opts = ReceiveOptions {
        now: 1,
        delta_max: None,
    };
    let r = receive(
        root,
        &mut Cursor::new(input),
        &mut Events { out: &mut events },
        &opts,
    );
    let events = String::from_utf8(events)
        .unwrap()
        .lines()
        .map(|l| AgentEvent::from_line(l).unwrap())
        .collect();
    (
        r.map(|r| r.changed)
            .map_err(|e| (e.kind(), liminix_bundle::wire::one_line(&e))),
        events,
    )
}

#[test]
fn a_version_bump_is_received_as_a_patch_against_the_older_release() {
    let (build, dev) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = SecretKey::generate();
    build_store(build.path());
    let root = device(dev.path(), &key);
    let base = build.path().join("nix/store").join(OLD);
    let (input, whole, sent) = stream(build.path(), &key, OLD, &base);
    assert!(
        sent * 4 < whole as usize,
        "patch entry {sent} bytes, whole {whole}"
    );
    let (r, events) = run(&root, &input);
    assert_eq!(r, Ok(true), "{events:?}");
    let Some(AgentEvent::Want { bases, .. }) = events.first() else {
        panic!("{events:?}")
    };
    let offered: Vec<&str> = bases.iter().map(|b| b.base.as_str()).collect();
    assert_eq!(offered, [OLD], "the newest release of the same output");
    let lib = std::fs::read(root.store().join(NEW).join("lib/libfoo.so")).unwrap();
    assert!(lib == library(1), "the patched library");
}

#[test]
fn patches_against_other_bases_are_refused() {
    let (build, dev) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = SecretKey::generate();
    build_store(build.path());
    let root = device(dev.path(), &key);
    // Made against OLDER, which the agent did not offer.
    let older = root.store().join(OLDER);
    let (input, _, _) = stream(build.path(), &key, OLDER, &older);
    let (r, _) = run(&root, &input);
    let (kind, message) = r.unwrap_err();
    assert_eq!(kind, ErrorKind::Payload, "{message}");
    assert!(message.contains("did not offer"), "{message}");
    assert!(!root.store().join(NEW).exists());
    // Named OLD, made against other contents than the device's OLD.
    let (input, _, _) = stream(build.path(), &key, OLD, &root.store().join(OTHER_OUTPUT));
    let (r, _) = run(&root, &input);
    let (kind, message) = r.unwrap_err();
    assert_eq!(kind, ErrorKind::Payload, "{message}");
    assert!(message.contains("different base"), "{message}");
    assert!(!root.store().join(NEW).exists());
}
