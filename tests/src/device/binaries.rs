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
