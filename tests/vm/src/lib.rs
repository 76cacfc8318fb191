//! liminix-vm: the one QEMU harness every test uses (TCG, no KVM).
//!
//! Shared parts: [`debian`] fetches a foreign architecture's Debian kernel and busybox once,
//! [`kernel`] finds kernels and resolves module dependencies, [`initramfs`] builds the guest's
//! root (one cpio writer, one shared-library copier), [`qemu`] runs QEMU and watches its serial
//! console (markers, power cuts, timeouts), [`build`] makes static test programs with cargo.
//!
//! Guest flavours on top:
//! - [`VmBuilder`]: a kernel and an initramfs whose /init runs a test script, on x86_64 (the
//!   host's kernel: nandsim, mtdram, block2mtd, UBI) or MIPS little-endian (`-M malta`,
//!   Debian's 4kc-malta kernel: the CPU of the MT76xx boards);
//! - [`arm::ArmBed`]: ARM `virt` with real U-Boot booting A/B slots from a virtio disk;
//! - [`arm::PflashBed`]: ARM `virt` with real U-Boot whose environment is in pflash;
//! - [`router::Router`]: a running x86_64 NOR router (squashfs root in a block2mtd `firmware`
//!   partition, s6 as PID 1, dropbear) the host reaches over ssh;
//! - [`writable::Guest`]: a running x86_64 writable-root board (ext4 persist filesystem with
//!   generations, preinit that honours `liminix.trial=N`), reached over ssh.

pub mod arm;
pub mod build;
mod cpio;
pub mod debian;
mod disk;
pub mod initramfs;
pub mod kernel;
pub mod malta;
pub mod qemu;
pub mod router;
mod scripted;
pub mod writable;

pub use build::{build_static, built_agent, static_agent_with_ab_apply, StaticTarget};
pub use disk::Disk;
pub use scripted::{Machine, VmBuilder, VmOutput};

use std::path::{Path, PathBuf};

/// Why a guest could not be prepared or run.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A host program the harness needs is not installed; names the Debian package.
    #[error("{tool} is missing: install the Debian package {package} (scripts/setup.sh does)")]
    MissingTool { tool: String, package: &'static str },
    /// Reading or writing a file on the host failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A host command (cargo, mkenvimage, sfdisk, …) failed.
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
    /// The kernel lacks a module a guest asked for.
    #[error("kernel {kernel} has no module {module}")]
    NoModule { kernel: String, module: String },
    /// The guest asked for something its machine cannot give.
    #[error("{0}")]
    Unsupported(String),
    /// `scripts/build-agents.sh` has not left the agent for this CPU.
    #[error("{} is missing: run `bash scripts/build-agents.sh` (scripts/test.sh does)", .0.display())]
    AgentNotBuilt(PathBuf),
    /// QEMU exited abnormally without the guest reporting a status.
    #[error("QEMU failed: {}\nserial:\n{}", .0.qemu_stderr, .0.serial)]
    Qemu(Box<VmOutput>),
    /// The guest did not finish in time.
    #[error("guest timed out after {secs} s; serial:\n{serial}")]
    Timeout { secs: u64, serial: String },
}

impl VmError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VmError + '_ {
        move |source| VmError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Fails with [`VmError::MissingTool`] unless `path` exists.
pub fn require(path: &str, package: &'static str) -> Result<(), VmError> {
    if Path::new(path).exists() {
        return Ok(());
    }
    Err(VmError::MissingTool {
        tool: path.to_string(),
        package,
    })
}

/// Fails with [`VmError::MissingTool`] unless `program` is on the PATH.
pub fn require_program(program: &str, package: &'static str) -> Result<(), VmError> {
    which(program).map(|_| ()).ok_or(VmError::MissingTool {
        tool: program.to_string(),
        package,
    })
}

/// The first `program` in the PATH (or the sbin directories busybox and Debian use).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file());
    found
}

/// The workspace root, from this crate's place in it (tests/vm).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/vm lies two levels below the workspace root")
        .to_path_buf()
}

/// The cache for downloads and cross builds: `$CARGO_TARGET_DIR/NAME` (or target/NAME).
pub fn cache_dir(name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join(name)
}

/// Runs a host command and returns its stdout, failing with its stderr.
pub fn run_command(cmd: &mut std::process::Command) -> Result<Vec<u8>, VmError> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| VmError::Command {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(VmError::Command {
            command,
            detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_an_error_that_names_its_package() {
        let e = require_program("liminix-no-such-tool", "some-package").unwrap_err();
        assert!(matches!(e, VmError::MissingTool { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("install the Debian package some-package"),
            "{e}"
        );
        assert!(require("/nonexistent/tool", "pkg").is_err());
        assert!(require_program("sh", "dash").is_ok());
    }
}
