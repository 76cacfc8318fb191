//! A bundle carrying both a closure and images: `receive` installs the closure and passes over
//! the image entries (whose indices point into `images`, not `paths`); an image-only bundle is
//! refused by `receive` with a pointer to `apply`.

use std::io::Cursor;
use std::path::Path;

use liminix_agent::closure::receive::{receive, Events, ReceiveOptions};
use liminix_agent::error::{exit, AgentError, UsageError};
use liminix_agent::root::DeviceRoot;
use liminix_build_tools::images::ImageInput;
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::SecretKey;

const TOP: &str = "/nix/store/3wlx5g1j0cgw2bq9hbs3wbkzrk8x6ph5-system-configuration-x86_64";
const DEP: &str = "/nix/store/0c4ky3v7n7yrm8p3pg9hfw1mbsx8jxjz-busybox-1.36.1";

fn store(dir: &Path) {
    let top = dir.join(TOP.trim_start_matches('/'));
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(top.join("etc/nix-store-paths"), format!("{DEP}\n")).unwrap();
    std::fs::create_dir_all(top.join("bin")).unwrap();
    for f in ["activate", "init"] {
        std::fs::write(top.join("bin").join(f), b"#!/bin/sh\n").unwrap();
    }
    let dep = dir.join(DEP.trim_start_matches('/'));
    std::fs::create_dir_all(dep.join("bin")).unwrap();
    std::fs::write(dep.join("bin/busybox"), b"not really busybox").unwrap();
}

fn device(dir: &Path, key: &SecretKey) -> DeviceRoot {
    let root = DeviceRoot::new(dir);
    std::fs::create_dir_all(root.join("/etc/liminix/trusted-keys")).unwrap();
    std::fs::create_dir_all(root.store()).unwrap();
    std::fs::create_dir_all(root.join("/persist")).unwrap();
    std::fs::write(root.board_name(), "vm-nor\n").unwrap();
    std::fs::write(
        root.join("/etc/liminix/trusted-keys/k.pub"),
        key.public().to_file_text(),
    )
    .unwrap();
    root
}

fn pack(build: &Path, key: &SecretKey, toplevel: Option<&str>) -> Vec<u8> {
    let fw = build.join("fw");
    std::fs::write(&fw, vec![0x5Au8; 70_000]).unwrap();
    let images = [ImageInput {
        name: "firmware".into(),
        file: fw,
        base: None,
    }];
    let board = liminix_boards::builtin("vm-nor").unwrap();
    let opts = PackOptions {
        store_root: build,
        toplevel,
        board: "vm-nor",
        epoch: 0,
        build_time: 1,
        level: 3,
        images: &images,
        board_def: Some(&board),
        raw_images: true,
    };
    let out = build.join("b.bundle");
    write_bundle(&opts, key, &out, &|_, _| {}).unwrap();
    std::fs::read(out).unwrap()
}

/// The same bundle with the image entry moved in front of the store path entries, so that a
/// receiver mistaking it for a store path (same index 0) would try to restore it as a NAR.
fn images_first(dir: &Path, bundle: &[u8]) -> Vec<u8> {
    let file = dir.join("reorder.bundle");
    std::fs::write(&file, bundle).unwrap();
    let (_, entries) = liminix_build_tools::pack::index(&file).unwrap();
    let slice = |e: &liminix_build_tools::pack::EntryLocation| {
        bundle[e.offset as usize..(e.offset + e.len) as usize].to_vec()
    };
    let mut out = bundle[..entries[0].offset as usize].to_vec();
    let (images, paths): (Vec<_>, Vec<_>) = entries
        .iter()
        .partition(|e| e.header.kind == liminix_bundle::EntryKind::Image);
    assert_eq!((images.len(), paths.len()), (1, 2));
    for e in images.into_iter().chain(paths) {
        out.extend(slice(e));
    }
    out.push(0);
    out
}

#[test]
fn receive_installs_the_closure_of_a_mixed_bundle_and_refuses_an_image_only_one() {
    let build = tempfile::tempdir().unwrap();
    let dev = tempfile::tempdir().unwrap();
    let key = SecretKey::generate();
    store(build.path());
    let root = device(dev.path(), &key);
    let mixed = images_first(build.path(), &pack(build.path(), &key, Some(TOP)));
    let mut events = Vec::new();
    let opts = ReceiveOptions {
        now: 1,
        delta_max: Some(0),
    };
    let r = receive(
        &root,
        &mut Cursor::new(&mixed),
        &mut Events { out: &mut events },
        &opts,
    )
    .unwrap();
    assert!(r.changed);
    assert_eq!(r.manifest.images.len(), 1);
    assert_eq!(
        std::fs::read(root.join(&format!("{DEP}/bin/busybox"))).unwrap(),
        b"not really busybox"
    );
    let store_entries = std::fs::read_dir(root.store()).unwrap().count();
    assert!(
        store_entries >= 2,
        "the closure's two paths are in the store"
    );

    let only = pack(build.path(), &key, None);
    let Err(e) = receive(
        &root,
        &mut Cursor::new(&only),
        &mut Events { out: &mut events },
        &opts,
    ) else {
        panic!("receive took an image-only bundle")
    };
    assert!(
        matches!(e, AgentError::Usage(UsageError::ImagesOnly)),
        "{e}"
    );
    assert_eq!(e.exit_code(), exit::USAGE);
    assert!(e.to_string().contains("liminix-agent apply"), "{e}");
}
