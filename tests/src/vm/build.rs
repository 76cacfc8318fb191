//! Building static musl test programs to run inside guests.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::VmError;

const TARGET: &str = "x86_64-unknown-linux-musl";

/// Which cargo artefact of a package to build.
#[derive(Debug, Clone, Copy)]
pub enum StaticTarget<'a> {
    Bin(&'a str),
    Example(&'a str),
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A target dir of its own, so building while an outer `cargo test` holds the
/// workspace's build lock never waits.
fn target_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    base.join("vm-static")
}

/// `cargo build --release --target x86_64-unknown-linux-musl` of one binary or
/// example; returns the path of the static executable.
pub fn build_static(package: &str, what: StaticTarget) -> Result<PathBuf, VmError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let dir = target_dir();
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            TARGET,
            "-p",
            package,
        ])
        .arg("--target-dir")
        .arg(&dir);
    let (flag, name, sub) = match what {
        StaticTarget::Bin(n) => ("--bin", n, ""),
        StaticTarget::Example(n) => ("--example", n, "examples"),
    };
    cmd.args([flag, name]);
    let status = cmd
        .status()
        .map_err(|e| VmError::Setup(format!("cargo: {e}")))?;
    if !status.success() {
        return Err(VmError::Setup(format!(
            "cargo build {flag} {name} -p {package} for {TARGET} failed"
        )));
    }
    let path = dir.join(TARGET).join("release").join(sub).join(name);
    if !path.is_file() {
        return Err(VmError::Setup(format!(
            "{} missing after build",
            path.display()
        )));
    }
    Ok(path)
}

/// Static x86_64 builds of the agent and its `ab_apply` example, returned in that
/// order. glibc with crt-static rather than musl: examples link the agent's
/// dev-dependencies, which include C code (zstd) that a musl target would need a
/// musl C compiler for.
pub fn static_agent_with_ab_apply() -> Result<(PathBuf, PathBuf), VmError> {
    let gnu = "x86_64-unknown-linux-gnu";
    let dir = target_dir().with_file_name("vm-gnu-static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args(["build", "--release", "--quiet", "--target", gnu])
        .args(["-p", "liminix-agent", "--bin", "liminix-agent"])
        .args(["--example", "ab_apply", "--target-dir"])
        .arg(&dir)
        .status()
        .map_err(|e| VmError::Setup(format!("cargo: {e}")))?;
    if !status.success() {
        return Err(VmError::Setup(format!(
            "static {gnu} build of liminix-agent and ab_apply failed"
        )));
    }
    let rel = dir.join(gnu).join("release");
    Ok((rel.join("liminix-agent"), rel.join("examples/ab_apply")))
}
