//! The NOR router test bed shared by `tests/tests/nor_router_vm.rs` and `bench/levitate.sh`:
//! the keys, the static agent and the kernel's uImage of the router guest
//! (`liminix_vm::router`), firmware images made from a root tree by our squashfs writer, image
//! bundles made by the real `liminix-pack`, and the real `update.sh` client run against a
//! booted router over its forwarded ssh port with a strict known_hosts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use liminix_build_tools::image::squashfs::{self, Compression, SquashfsSpec};
use liminix_vm::kernel::find_kernel;
use liminix_vm::router::{flash, Keys, Layout, RootTree, Router};
use liminix_vm::{build_static, Disk, StaticTarget};

use crate::device::{client_binary, pack_binary};

/// The guest's board name and definition: its flash as the preinit partitions it (`rootfs`
/// is a sibling partition the board does not list, see docs/testing.md). Every firmware
/// carries it as `/etc/liminix/board.toml`, with the build key in `trusted-keys`, so that
/// `apply` knows the board.
pub const BOARD: &str = "qemu-nor-router";
pub const BOARD_TOML: &str = r#"name = "qemu-nor-router"
description = "the NOR router test guest: block2mtd flash, raw firmware partition"
strategy = "raw"
cpu = "x86_64"

[[flash]]
name = "flash"
type = "nor"
size = 0x1900000
erase_size = 0x20000

  [[flash.partition]]
  name = "firmware"
  offset = 0x0
  size = 0x1800000

  [[flash.partition]]
  name = "persist"
  offset = 0x1800000
  size = 0x100000

[[image]]
name = "firmware"
target = "mtd:firmware"
"#;

/// SOURCE_DATE_EPOCH of every image.
const EPOCH: u64 = 1_700_000_000;

/// What every scenario shares.
pub struct NorBed {
    pub keys: Keys,
    pub agent: PathBuf,
    pub uimage: Vec<u8>,
    pub layout: Layout,
    /// The build key pair (`liminix-pack keygen`) and the board definition file.
    build: tempfile::TempDir,
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl NorBed {
    /// Builds the static agent and the uImage, makes the keys.
    ///
    /// # Panics
    /// If a tool is missing or a build fails.
    pub fn new() -> NorBed {
        let kernel = find_kernel().expect("the host's kernel");
        let build = tempfile::tempdir().expect("tempdir");
        run_ok(
            Command::new(pack_binary())
                .arg("keygen")
                .arg("--secret")
                .arg(build.path().join("build.sec"))
                .arg("--public")
                .arg(build.path().join("build.pub")),
        );
        std::fs::write(build.path().join("board.toml"), BOARD_TOML).expect("board.toml");
        NorBed {
            keys: Keys::generate().expect("keys"),
            agent: build_static("liminix-agent", StaticTarget::Bin("liminix-agent"))
                .expect("static agent"),
            uimage: flash::kernel_uimage(&kernel, "liminix-router").expect("uImage"),
            layout: Layout::default(),
            build,
        }
    }

    fn build_file(&self, name: &str) -> PathBuf {
        self.build.path().join(name)
    }

    /// `firmware.bin` whose root says `banner` and holds `filler` as /etc/filler.
    ///
    /// # Panics
    /// If the tree, the squashfs or the image cannot be made.
    pub fn firmware_with(&self, banner: &str, filler: Option<&[u8]>) -> Vec<u8> {
        let tree = RootTree::build(banner, &self.keys, &self.agent).expect("root tree");
        let public = std::fs::read(self.build_file("build.pub")).expect("build.pub");
        tree.file("/etc/liminix/trusted-keys/build.pub", &public, 0o644)
            .expect("trusted key");
        tree.file("/etc/liminix/board.toml", BOARD_TOML.as_bytes(), 0o644)
            .expect("board.toml");
        if let Some(data) = filler {
            tree.file("/etc/filler", data, 0o644).expect("filler");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("rootfs.squashfs");
        let spec = SquashfsSpec {
            compression: Compression::Gzip,
            epoch: EPOCH,
            block_size: None,
        };
        squashfs::write(tree.path(), &spec, &out).expect("squashfs");
        let root = std::fs::read(&out).expect("squashfs");
        flash::firmware(&self.uimage, &root, &self.layout).expect("firmware.bin")
    }

    /// A flash disk holding `firmware`.
    ///
    /// # Panics
    /// If the disk cannot be written.
    pub fn disk(&self, tag: &str, firmware: &[u8]) -> Disk {
        let disk = Disk::new(tag, self.layout.flash_bytes());
        flash::write_disk(disk.path(), &self.layout, firmware).expect("flash disk");
        disk
    }

    /// `liminix-pack bundle` of `firmware` for the board, signed with the build key.
    ///
    /// # Panics
    /// If the packer fails.
    pub fn bundle(&self, firmware: &[u8], name: &str) -> PathBuf {
        self.bundle_for(BOARD_TOML, &[("firmware", firmware)], name)
    }

    /// `liminix-pack bundle --board-file` of `images` (image name, bytes) for the board
    /// definition `board_toml` (its name must be [`BOARD`]), signed with the build key.
    ///
    /// # Panics
    /// If the packer fails.
    pub fn bundle_for(&self, board_toml: &str, images: &[(&str, &[u8])], name: &str) -> PathBuf {
        let board = self.build_file(&format!("{name}.board.toml"));
        std::fs::write(&board, board_toml).expect("board file");
        let out = self.build_file(&format!("{name}.bundle"));
        let mut cmd = Command::new(pack_binary());
        cmd.args(["bundle", "--board", BOARD, "--epoch", "1"])
            .arg("--key")
            .arg(self.build_file("build.sec"))
            .arg("--board-file")
            .arg(&board);
        for (image, data) in images {
            let file = self.build_file(&format!("{name}.{image}.bin"));
            std::fs::write(&file, data).expect("image file");
            cmd.arg("--image")
                .arg(format!("{image}={}", file.display()));
        }
        run_ok(cmd.arg("--out").arg(&out));
        out
    }

    /// `liminix-pack bundle --delta-base` of `firmware` for the board: its image is a patch
    /// against `base` (what the router must hold in its `firmware` partition to take it).
    ///
    /// # Panics
    /// If the packer fails.
    pub fn patch_bundle(&self, firmware: &[u8], base: &[u8], name: &str) -> PathBuf {
        let base_file = self.build_file(&format!("{name}.base.bin"));
        std::fs::write(&base_file, base).expect("base file");
        let image = self.build_file(&format!("{name}.firmware.bin"));
        std::fs::write(&image, firmware).expect("image file");
        let out = self.build_file(&format!("{name}.bundle"));
        run_ok(
            Command::new(pack_binary())
                .args(["bundle", "--board", BOARD, "--epoch", "1"])
                .arg("--key")
                .arg(self.build_file("build.sec"))
                .arg("--board-file")
                .arg(self.build_file("board.toml"))
                .arg("--image")
                .arg(format!("firmware={}", image.display()))
                .arg("--delta-base")
                .arg(format!("firmware={}", base_file.display()))
                .arg("--out")
                .arg(&out),
        );
        out
    }

    /// The ssh command a user of this router would put in `SSH_COMMAND`: the client key and
    /// a known_hosts (written at `known`) that holds only the router's host key.
    ///
    /// # Panics
    /// If `known` cannot be written.
    pub fn ssh_command(&self, r: &Router, known: &Path) -> String {
        let line = format!("[127.0.0.1]:{} {}\n", r.port(), self.keys.host_public);
        std::fs::write(known, line).expect("known_hosts");
        format!(
            "ssh -i {} -p {} -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} \
             -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=5 \
             -o IdentitiesOnly=yes -o LogLevel=ERROR",
            self.keys.client_key.display(),
            r.port(),
            known.display()
        )
    }

    /// `update.sh` (the real `liminix-update`) with `bundle` against the router, `args`
    /// added; its output is also printed.
    ///
    /// # Panics
    /// If the client cannot be started.
    pub fn update_sh(&self, r: &Router, bundle: &Path, args: &[&str]) -> Output {
        let dir = tempfile::tempdir().expect("tempdir");
        let ssh = self.ssh_command(r, &dir.path().join("known_hosts"));
        let mut cmd = Command::new(client_binary());
        cmd.env("SSH_COMMAND", ssh).arg("--bundle").arg(bundle);
        let out = cmd
            .args(args)
            .arg("root@127.0.0.1")
            .output()
            .expect("update.sh");
        eprintln!(
            "update.sh exit {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Default for NorBed {
    fn default() -> Self {
        Self::new()
    }
}

/// The JSON lines `update.sh --json` printed whose `event` is `name`.
pub fn events(out: &Output, name: &str) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == name)
        .collect()
}
