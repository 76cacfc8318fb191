//! A refusal leaves the device as it was: each bad input runs against a device root whose whole
//! tree (paths, types, modes, sizes, contents, link targets) is snapshotted before and after, and
//! the two must be identical. The agent runs in-process on a temporary root, or as the binary
//! where the command line matters (a missing `--root`).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use liminix_agent::closure::receive::{receive, Events, ReceiveOptions, Received};
use liminix_agent::error::{AgentError, ErrorKind};
use liminix_agent::root::DeviceRoot;
use liminix_build_tools::closure::count_entries;
use liminix_build_tools::pack::{index, write_bundle, PackOptions};
use liminix_bundle::manifest::{Generation, PathEntry, FORMAT_VERSION};
use liminix_bundle::stream::Encoding;
use liminix_bundle::{Manifest, SecretKey};
use liminix_tests::crafted::{self, TOP};
use liminix_tests::tree::snapshot;
use sha2::{Digest, Sha256};

/// A toplevel without `bin/activate`: every device refuses it, after the transfer.
const HOLLOW: &str = "/nix/store/7ylx5g1j0cgw2bq9hbs3wbkzrk8x6ph5-system-configuration-x86_64";
const DEP: &str = "/nix/store/0c4ky3v7n7yrm8p3pg9hfw1mbsx8jxjz-busybox-1.36.1";
/// More than one commit batch of the receiver, so that it is in the store before the toplevel
/// (which sorts after it) arrives.
const DEP_BYTES: usize = 5 << 20;

struct Bench {
    build: tempfile::TempDir,
    device: tempfile::TempDir,
    key: SecretKey,
}

impl Bench {
    /// A build host with TOP, HOLLOW and DEP, and an empty device that trusts `key`: no store,
    /// no generations, only its identity and a persist directory.
    fn new() -> Bench {
        let build = tempfile::tempdir().unwrap();
        let store = |p: &str| build.path().join(p.trim_start_matches('/'));
        for top in [TOP, HOLLOW] {
            std::fs::create_dir_all(store(top).join("etc")).unwrap();
            std::fs::write(store(top).join("etc/nix-store-paths"), format!("{DEP}\n")).unwrap();
            std::fs::create_dir_all(store(top).join("bin")).unwrap();
            std::fs::write(store(top).join("bin/init"), b"#!/bin/sh\n").unwrap();
        }
        std::fs::write(store(TOP).join("bin/activate"), b"#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(store(DEP).join("bin")).unwrap();
        std::fs::write(
            store(DEP).join("bin/busybox"),
            liminix_testdata::pattern(7, DEP_BYTES),
        )
        .unwrap();
        let key = SecretKey::generate();
        let device = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(device.path());
        std::fs::create_dir_all(root.join("/etc/liminix/trusted-keys")).unwrap();
        std::fs::create_dir_all(root.join("/persist")).unwrap();
        std::fs::write(root.board_name(), "qemu\n").unwrap();
        std::fs::write(
            root.join("/etc/liminix/trusted-keys/k.pub"),
            key.public().to_file_text(),
        )
        .unwrap();
        Bench { build, device, key }
    }

    fn root(&self) -> DeviceRoot {
        DeviceRoot::new(self.device.path())
    }

    /// A bundle of `top` signed by `key`, for `board`, at `epoch`.
    fn bundle(&self, top: &str, key: &SecretKey, board: &str, epoch: u64) -> Vec<u8> {
        let opts = PackOptions {
            store_root: self.build.path(),
            toplevel: Some(top),
            board,
            epoch,
            build_time: 1,
            level: 1,
            images: &[],
            board_def: None,
            raw_images: false,
        };
        let out = self.build.path().join("b.bundle");
        write_bundle(&opts, key, &out, &|_, _| {}).unwrap();
        std::fs::read(out).unwrap()
    }

    /// A bundle of HOLLOW (and DEP; paths sorted), signed by the trusted key. The packer refuses to make one
    /// (it checks `bin/activate` before signing), so it is written as a careless or older
    /// packer would: the agent must still refuse it on its own.
    fn hollow(&self, epoch: u64) -> Vec<u8> {
        let host = |p: &str| self.build.path().join(p.trim_start_matches('/'));
        let mut nars = Vec::new();
        let mut paths = Vec::new();
        for p in [DEP, HOLLOW] {
            let mut nar = Vec::new();
            let h = liminix_bundle::nar::dump(&host(p), &mut nar).unwrap();
            paths.push(PathEntry {
                path: p.into(),
                nar_sha256: hex::encode(h.sha256),
                nar_size: h.size,
                entries: count_entries(&host(p)),
            });
            nars.push(nar);
        }
        let m = Manifest {
            format: FORMAT_VERSION,
            board: "qemu".into(),
            generation: Generation {
                toplevel: HOLLOW.into(),
                build_time: 1,
            },
            epoch,
            paths,
            images: Vec::new(),
        };
        signed(&self.key, m, &nars)
    }

    fn good(&self, epoch: u64) -> Vec<u8> {
        self.bundle(TOP, &self.key, "qemu", epoch)
    }

    fn receive(&self, bundle: &[u8]) -> Result<Received, AgentError> {
        let mut sink = Vec::new();
        receive(
            &self.root(),
            &mut Cursor::new(bundle),
            &mut Events { out: &mut sink },
            &ReceiveOptions {
                now: 1_800_000_000,
                delta_max: Some(0),
            },
        )
    }

    /// Runs `bundle` and checks that it is refused and that the device did not change.
    fn refused(&self, what: &str, bundle: &[u8]) -> AgentError {
        let before = snapshot(self.device.path());
        let e = match self.receive(bundle) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e,
        };
        before.assert_same(&snapshot(self.device.path()), what);
        e
    }
}

/// `bundle` with one byte flipped in the middle of the entry of `path`.
fn flipped(bench: &Bench, bundle: &[u8], path: &str) -> Vec<u8> {
    let file = bench.build.path().join("flip.bundle");
    std::fs::write(&file, bundle).unwrap();
    let (header, entries) = index(&file).unwrap();
    let victim = entries
        .iter()
        .find(|e| header.manifest.paths[e.header.index as usize].path == path)
        .unwrap();
    let mut bytes = bundle.to_vec();
    bytes[(victim.offset + victim.len / 2) as usize] ^= 0x01;
    bytes
}

/// A signed bundle of `m` carrying `nar` (raw) as its first path's entry.
fn crafted(key: &SecretKey, m: Manifest, nar: &[u8]) -> Vec<u8> {
    signed(key, m, &[nar.to_vec()])
}

/// A signed bundle of `m` carrying `nars[i]` (raw) as path `i`'s entry.
fn signed(key: &SecretKey, m: Manifest, nars: &[Vec<u8>]) -> Vec<u8> {
    let entries: Vec<(u32, Encoding, &[u8])> = (0u32..)
        .zip(nars)
        .map(|(i, n)| (i, Encoding::Raw, &n[..]))
        .collect();
    let bytes = m.to_bytes();
    crafted::signed(key, m, bytes, &entries)
}

/// A manifest of one path, TOP, with the NAR size, entry count and hash given.
fn manifest(nar_size: u64, entries: u64, sha256: [u8; 32]) -> Manifest {
    crafted::one_path(sha256, nar_size, entries)
}

/// A directory NAR holding one file called `name`.
fn nar_with_entry(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in [
        &b"nix-archive-1"[..],
        b"(",
        b"type",
        b"directory",
        b"entry",
        b"(",
        b"name",
        name,
        b"node",
        b"(",
        b"type",
        b"regular",
        b"contents",
        b"pwned\n",
        b")",
        b")",
        b")",
    ] {
        crafted::nar_string(&mut out, w);
    }
    out
}

#[test]
fn bad_bundles_on_an_empty_device_change_nothing() {
    let b = Bench::new();
    let good = b.good(0);
    let e = b.refused("a corrupt toplevel entry", &flipped(&b, &good, TOP));
    assert_eq!(e.kind(), ErrorKind::Payload, "{e}");
    let e = b.refused("a corrupt dependency entry", &flipped(&b, &good, DEP));
    assert_eq!(e.kind(), ErrorKind::Payload, "{e}");
    let e = b.refused("a bundle cut in its header", &good[..100]);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let e = b.refused("another board", &b.bundle(TOP, &b.key, "gl-ar750", 0));
    assert_eq!(e.kind(), ErrorKind::WrongBoard, "{e}");
    let stranger = SecretKey::generate();
    let e = b.refused("an untrusted key", &b.bundle(TOP, &stranger, "qemu", 0));
    assert_eq!(e.kind(), ErrorKind::Untrusted, "{e}");
    let e = b.refused("not a bundle", b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let e = b.refused("a toplevel without bin/activate", &b.hollow(0));
    assert_eq!(e.kind(), ErrorKind::State, "{e}");
}

#[test]
fn hostile_payloads_and_numbers_change_nothing() {
    let b = Bench::new();
    for name in [&b".."[..], b"../etc", b"a/../../x"] {
        let nar = nar_with_entry(name);
        let m = manifest(nar.len() as u64, 2, Sha256::digest(&nar).into());
        let e = b.refused("a path escape", &crafted(&b.key, m, &nar));
        assert_eq!(e.kind(), ErrorKind::Payload, "{e}");
    }
    let nar = nar_with_entry(b"x");
    let sha = Sha256::digest(&nar).into();
    // Sizes no store has room for; whichever check refuses them, nothing may be written.
    for (size, entries) in [(1u64 << 62, 1u64), (1, 1 << 40), (u64::MAX / 4, 1 << 20)] {
        b.refused(
            "huge numbers",
            &crafted(&b.key, manifest(size, entries, sha), &nar),
        );
    }
    let st = rustix::fs::statvfs(b.device.path()).unwrap();
    let free = st.f_bavail * st.f_frsize;
    // 1 GiB over, not 1 byte: the other tests of this file free their temporary files while
    // this one runs, and the free space the agent reads a moment later may have grown.
    let e = b.refused(
        "more than the free space",
        &crafted(&b.key, manifest(free + (1 << 30), 1, sha), &nar),
    );
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    let e = b.refused(
        "a NAR longer than its manifest entry",
        &crafted(&b.key, manifest(nar.len() as u64 - 8, 2, sha), &nar),
    );
    assert_eq!(e.kind(), ErrorKind::Payload, "{e}");
}

/// A bundle cut inside an entry, before any store path was verified, leaves nothing; one cut
/// after a verified batch keeps exactly those paths for the retry, and nothing else.
#[test]
fn a_cut_transfer_keeps_only_verified_paths() {
    let b = Bench::new();
    let good = b.good(0);
    let file = b.build.path().join("cut.bundle");
    std::fs::write(&file, &good).unwrap();
    let (_, entries) = index(&file).unwrap();
    let first = &entries[0];
    let cut = (first.offset + first.len / 2) as usize;
    let e = b.refused("a bundle cut inside its first entry", &good[..cut]);
    assert!(
        matches!(e.kind(), ErrorKind::Payload | ErrorKind::Corrupt),
        "{e}"
    );
    let before = snapshot(b.device.path());
    let second = &entries[1];
    let cut = (second.offset + second.len / 2) as usize;
    assert!(b.receive(&good[..cut]).is_err(), "a cut bundle is refused");
    let added = before.diff(&snapshot(b.device.path()));
    let dep = DEP.trim_start_matches('/');
    assert!(
        added
            .iter()
            .all(|l| l.starts_with("+ /nix/store") || l.starts_with("+ /nix ")),
        "only store paths are added: {added:#?}"
    );
    assert!(b.root().join(DEP).join("bin/busybox").is_file(), "{dep}");
    assert!(!b.root().join(TOP).exists());
    assert!(!b.root().store_staging().exists(), "no staging left");
    assert!(!b.root().generations().exists(), "no generation");
    b.receive(&good).expect("the retry installs");
}

#[test]
fn a_downgrade_after_an_install_changes_nothing() {
    let b = Bench::new();
    let r = b.receive(&b.good(2)).expect("install at epoch 2");
    assert!(r.changed);
    let e = b.refused("a lower epoch", &b.good(1));
    assert_eq!(e.kind(), ErrorKind::Epoch, "{e}");
    let e = b.refused(
        "a toplevel without bin/activate over an installed one",
        &b.hollow(2),
    );
    assert_eq!(e.kind(), ErrorKind::State, "{e}");
}

/// A factory-flashed device (plain files in /persist, no generation records): a refused first
/// update must not adopt the factory system on its way to failing.
#[test]
fn a_refused_first_update_does_not_adopt_the_factory_system() {
    let b = Bench::new();
    let persist = b.root().join("/persist");
    std::fs::write(persist.join("activate"), b"#!/bin/sh\nfactory\n").unwrap();
    std::fs::write(persist.join("init"), b"#!/bin/sh\n").unwrap();
    let e = b.refused("a toplevel without bin/activate", &b.hollow(0));
    assert_eq!(e.kind(), ErrorKind::State, "{e}");
}

#[test]
fn a_busy_device_changes_nothing() {
    let b = Bench::new();
    let _held = b.root().lock().unwrap();
    let e = b.refused("a second agent", &b.good(0));
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
}

fn agent(root: &Path, args: &[&str], stdin: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_liminix-agent"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(std::fs::File::open(stdin).unwrap())
        .output()
        .expect("run liminix-agent")
}

/// `--root` naming nothing is refused before anything is made there (a lock, a store, a journal).
#[test]
fn a_missing_root_is_refused_and_not_made() {
    let b = Bench::new();
    let bundle: PathBuf = b.build.path().join("good.bundle");
    std::fs::write(&bundle, b.good(0)).unwrap();
    let missing = b.device.path().join("dest/@");
    let before = snapshot(b.device.path());
    for args in [
        &["receive", "--no-reboot"][..],
        &["rollback", "7"],
        &["gc"],
        &["status"],
        &["apply", bundle.to_str().unwrap()],
        &["recover"],
    ] {
        let o = agent(&missing, args, &bundle);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("opening the device root"),
            "{args:?}: {stderr}"
        );
        before.assert_same(&snapshot(b.device.path()), &format!("{args:?}"));
        assert!(!missing.exists(), "{args:?} made the root");
    }
    let empty = snapshot(b.device.path());
    let o = agent(b.device.path(), &["rollback", "7"], &bundle);
    assert!(!o.status.success());
    empty.assert_same(
        &snapshot(b.device.path()),
        "rollback of a missing generation",
    );
}
