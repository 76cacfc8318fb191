//! Static builds of this workspace's programs for guests, by running cargo: each build
//! kind has a target dir of its own, so building while an outer `cargo test` holds the
//! workspace's build lock never waits.

use std::path::PathBuf;
use std::process::Command;

use super::VmError;

/// Which cargo artefact of a package to build.
#[derive(Debug, Clone, Copy)]
pub enum StaticTarget<'a> {
    Bin(&'a str),
    Example(&'a str),
}

impl StaticTarget<'_> {
    fn args(self) -> [&'static str; 1] {
        match self {
            StaticTarget::Bin(_) => ["--bin"],
            StaticTarget::Example(_) => ["--example"],
        }
    }

    fn name(&self) -> &str {
        match self {
            StaticTarget::Bin(n) | StaticTarget::Example(n) => n,
        }
    }

    fn subdir(self) -> &'static str {
        match self {
            StaticTarget::Bin(_) => "",
            StaticTarget::Example(_) => "examples",
        }
    }
}

/// `cargo build --release --target TRIPLE -p PACKAGE` of `what`, in the target dir
/// `cache_dir(dir)`; returns the executables in the order of `what`.
fn cargo_build(
    dir: &str,
    triple: &str,
    rustflags: Option<&str>,
    package: &str,
    what: &[StaticTarget],
) -> Result<Vec<PathBuf>, VmError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = crate::cache_dir(dir);
    let mut cmd = Command::new(cargo);
    cmd.current_dir(crate::workspace_root())
        .args(["build", "--release", "--quiet", "--target", triple])
        .args(["-p", package])
        .arg("--target-dir")
        .arg(&target_dir);
    if let Some(flags) = rustflags {
        cmd.env("RUSTFLAGS", flags);
    }
    for w in what {
        cmd.args(w.args()).arg(w.name());
    }
    crate::run_command(&mut cmd)?;
    let rel = target_dir.join(triple).join("release");
    what.iter()
        .map(|w| {
            let path = rel.join(w.subdir()).join(w.name());
            if path.is_file() {
                Ok(path)
            } else {
                Err(VmError::Io {
                    path,
                    source: std::io::ErrorKind::NotFound.into(),
                })
            }
        })
        .collect()
}

/// A static x86_64 musl build of one binary or example of `package`.
pub fn build_static(package: &str, what: StaticTarget) -> Result<PathBuf, VmError> {
    let mut v = cargo_build(
        "vm-static",
        "x86_64-unknown-linux-musl",
        None,
        package,
        &[what],
    )?;
    Ok(v.remove(0))
}

fn agent_and_ab_apply(v: Vec<PathBuf>) -> (PathBuf, PathBuf) {
    let mut v = v.into_iter();
    let agent = v.next().expect("two artefacts built");
    (agent, v.next().expect("two artefacts built"))
}

const AGENT: [StaticTarget<'static>; 2] = [
    StaticTarget::Bin("liminix-agent"),
    StaticTarget::Example("ab_apply"),
];

/// Static x86_64 builds of the agent and its `ab_apply` example, returned in that
/// order. glibc with crt-static rather than musl: examples link the agent's
/// dev-dependencies, which include C code (zstd) that a musl target would need a
/// musl C compiler for.
pub fn static_agent_with_ab_apply() -> Result<(PathBuf, PathBuf), VmError> {
    let flags = Some("-C target-feature=+crt-static");
    let v = cargo_build(
        "vm-gnu-static",
        "x86_64-unknown-linux-gnu",
        flags,
        "liminix-agent",
        &AGENT,
    )?;
    Ok(agent_and_ab_apply(v))
}

/// Static ARMv7 builds of the agent and its `ab_apply` example (.cargo/config.toml makes
/// armv7-unknown-linux-gnueabihf builds static), in that order.
pub fn armv7_agent_with_ab_apply() -> Result<(PathBuf, PathBuf), VmError> {
    let v = cargo_build(
        "vm-arm-build",
        "armv7-unknown-linux-gnueabihf",
        None,
        "liminix-agent",
        &AGENT,
    )?;
    Ok(agent_and_ab_apply(v))
}

/// The static agent for the CPU `triple` that `scripts/build-agents.sh` left in
/// `$CARGO_TARGET_DIR/agents` (the MIPS ones need a nightly toolchain, which a nested cargo
/// build here would not pick).
pub fn built_agent(triple: &str) -> Result<PathBuf, VmError> {
    let path = crate::cache_dir("agents")
        .join(triple)
        .join("liminix-agent");
    if path.is_file() {
        Ok(path)
    } else {
        Err(VmError::AgentNotBuilt(path))
    }
}
