//! What every fuzz run shares, made once per process: a build host's store with a toplevel and
//! one dependency (their NARs and entry counts), an image, and the test key; and a fresh device
//! root per reader.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use liminix_bundle::nar;

use crate::root::DeviceRoot;

/// The board of the fuzz bundles: raw NOR, one `firmware` partition of 4 MiB.
pub const BOARD: &str = "vm-nor";
/// Its one image.
pub const IMAGE: &str = "firmware";

const TOP: &str = "/nix/store/3wlx5g1j0cgw2bq9hbs3wbkzrk8x6ph5-system-configuration-x86_64";
const DEP: &str = "/nix/store/0c4ky3v7n7yrm8p3pg9hfw1mbsx8jxjz-busybox-1.36.1";
/// A fixed ed25519 secret key: fuzz bundles are signed alike on every run.
const KEY_HEX: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

pub struct StorePathFixture {
    pub path: &'static str,
    pub nar: Vec<u8>,
    /// Files, directories and symlinks, as the manifest counts them.
    pub entries: u64,
}

pub struct Fixture {
    /// Kept for the process: the store the NARs were made from, and the key file.
    dir: tempfile::TempDir,
    /// Sorted as a manifest lists them: the dependency, then the toplevel.
    pub paths: Vec<StorePathFixture>,
    pub image: Vec<u8>,
    pub key_file: PathBuf,
}

impl Fixture {
    /// The one fixture of this process.
    pub fn get() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(Fixture::make)
    }

    fn make() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let top = dir.path().join(TOP.trim_start_matches('/'));
        write(
            &top.join("etc/nix-store-paths"),
            format!("{DEP}\n").as_bytes(),
        );
        for f in ["activate", "init"] {
            write(&top.join("bin").join(f), b"#!/bin/sh\n");
        }
        let dep = dir.path().join(DEP.trim_start_matches('/'));
        write(&dep.join("bin/busybox"), b"not really busybox");
        let key_file = dir.path().join("test.sec");
        write(
            &key_file,
            format!("liminix-ed25519-secret {KEY_HEX}\n").as_bytes(),
        );
        let paths = vec![
            StorePathFixture {
                path: DEP,
                nar: nar_of(&dep),
                entries: 3,
            },
            StorePathFixture {
                path: TOP,
                nar: nar_of(&top),
                entries: 6,
            },
        ];
        let image = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
        Fixture {
            dir,
            paths,
            image,
            key_file,
        }
    }

    /// A fresh device below a new directory of the fixture's: board `vm-nor`, the test key
    /// trusted, an empty store and `/persist`.
    pub fn device(&self) -> (tempfile::TempDir, DeviceRoot) {
        let dir = tempfile::tempdir_in(self.dir.path()).expect("a temporary directory");
        let root = DeviceRoot::new(dir.path());
        let key = liminix_bundle::SecretKey::load(&self.key_file).expect("valid key file");
        write(
            &root.join("/etc/liminix/trusted-keys/test.pub"),
            key.public().to_file_text().as_bytes(),
        );
        write(&root.board_name(), format!("{BOARD}\n").as_bytes());
        std::fs::create_dir_all(root.store()).expect("creating the store");
        std::fs::create_dir_all(root.join("/persist")).expect("creating /persist");
        (dir, root)
    }
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("creating a directory");
    std::fs::write(path, data).expect("writing a fixture file");
}

fn nar_of(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    nar::dump(path, &mut out).expect("dumping a fixture path");
    out
}
