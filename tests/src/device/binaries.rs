//! The project's own binaries, built once per test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const MUSL: &str = "x86_64-unknown-linux-musl";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// `CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace().join("target"), PathBuf::from)
}

fn cargo_build(args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release"])
        .args(args)
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .expect("cannot run cargo");
    assert!(status.success(), "cargo build --release {args:?} failed");
}

fn built(cell: &OnceLock<()>, args: &[&str], path: PathBuf) -> PathBuf {
    cell.get_or_init(|| cargo_build(args));
    assert!(path.is_file(), "{} missing after build", path.display());
    path
}

/// The static musl `liminix-agent` (what the device runs).
///
/// # Panics
/// If the build fails: a test cannot run without it.
pub fn agent_binary() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let path = target_dir().join(MUSL).join("release/liminix-agent");
    built(&BUILT, &["-p", "liminix-agent", "--target", MUSL], path)
}

static BUILD_TOOLS: OnceLock<()> = OnceLock::new();

/// The host-side update client `liminix-update` (package liminix-build-tools).
///
/// # Panics
/// If the build fails.
pub fn client_binary() -> PathBuf {
    built(
        &BUILD_TOOLS,
        &["-p", "liminix-build-tools"],
        target_dir().join("release/liminix-update"),
    )
}

/// The packer `liminix-pack` (package liminix-build-tools).
///
/// # Panics
/// If the build fails.
pub fn pack_binary() -> PathBuf {
    built(
        &BUILD_TOOLS,
        &["-p", "liminix-build-tools"],
        target_dir().join("release/liminix-pack"),
    )
}

/// A directory of agents in the layout `liminix-pack updater --agents-dir` reads: the x86_64
/// one is [`agent_binary`] (this source tree's), every other CPU's is the build of
/// `scripts/build-agents.sh` (`target/agents/<triple>/liminix-agent`), linked, not copied.
///
/// # Panics
/// If the directory or its links cannot be made.
pub fn test_agents_dir() -> PathBuf {
    static MADE: OnceLock<PathBuf> = OnceLock::new();
    MADE.get_or_init(|| {
        let dir = target_dir().join("test-agents");
        for triple in [
            MUSL,
            "aarch64-unknown-linux-musl",
            "armv7-unknown-linux-gnueabihf",
            "mipsel-unknown-linux-gnu",
            "mips-unknown-linux-gnu",
        ] {
            let source = if triple == MUSL {
                agent_binary()
            } else {
                target_dir()
                    .join("agents")
                    .join(triple)
                    .join("liminix-agent")
            };
            let link = dir.join(triple).join("liminix-agent");
            std::fs::create_dir_all(dir.join(triple)).expect("test agents directory");
            // Another test process may have made it already; it points at the same file.
            match std::os::unix::fs::symlink(&source, &link) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("{}: {e}", link.display()),
            }
        }
        dir
    })
    .clone()
}
