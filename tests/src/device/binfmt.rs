//! Executables of another CPU inside the device chroot: binfmt_misc hands them to Debian's
//! `qemu-<arch>-static`. The `F` flag makes the kernel open the interpreter when the entry is
//! registered, so it need not exist inside the chroot (the device has only its own busybox).
//! The `P` flag keeps `argv[0]`: busybox re-executes itself for applets in pipelines, and
//! without it every such applet would start as the shell.

use std::fs;
use std::path::{Path, PathBuf};

use rustix::mount::{mount, MountFlags};

use super::rootfs::io;
use super::DeviceError;

const MISC: &str = "/proc/sys/fs/binfmt_misc";

fn missing(what: String, detail: &str) -> DeviceError {
    DeviceError::Command {
        what,
        detail: detail.into(),
    }
}

/// The `interpreter`, `magic` and `mask` lines of Debian's description
/// (`/usr/share/binfmts/qemu-ARCH`).
fn description(arch: &str) -> Result<(String, String, String), DeviceError> {
    let desc = PathBuf::from(format!("/usr/share/binfmts/qemu-{arch}"));
    let text = fs::read_to_string(&desc).map_err(io(&desc))?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .map(str::to_owned)
            .ok_or_else(|| missing(format!("{}: {key}", desc.display()), "no such line"))
    };
    Ok((field("interpreter")?, field("magic")?, field("mask")?))
}

fn has_our_flags(entry: &Path) -> bool {
    let text = fs::read_to_string(entry).unwrap_or_default();
    text.lines().next() == Some("enabled")
        && text
            .lines()
            .any(|l| l.starts_with("flags:") && l.contains('F') && l.contains('P'))
}

/// Makes the kernel run ARCH executables (`mipsel`, `mips`, …) under `qemu-ARCH-static` with
/// the `F` and `P` flags, mounting binfmt_misc first if need be; an entry of that name without
/// them is replaced. `scripts/setup.sh` does the same.
pub fn register_qemu_user(arch: &str) -> Result<(), DeviceError> {
    let register = Path::new(MISC).join("register");
    if !register.exists() {
        mount(
            "binfmt_misc",
            MISC,
            "binfmt_misc",
            MountFlags::empty(),
            None,
        )
        .map_err(|e| DeviceError::Io {
            path: MISC.into(),
            source: e.into(),
        })?;
    }
    let entry = Path::new(MISC).join(format!("qemu-{arch}"));
    if has_our_flags(&entry) {
        return Ok(());
    }
    if entry.exists() {
        fs::write(&entry, "-1").map_err(io(&entry))?;
    }
    let qemu = PathBuf::from(format!("/usr/bin/qemu-{arch}-static"));
    if !qemu.is_file() {
        return Err(missing(
            qemu.display().to_string(),
            "missing: install qemu-user-static (scripts/setup.sh)",
        ));
    }
    let (interpreter, magic, mask) = description(arch)?;
    let line = format!(":qemu-{arch}:M:0:{magic}:{mask}:{interpreter}:FP");
    // Another test process may register it at the same moment: then the entry is there.
    if let Err(e) = fs::write(&register, line) {
        if !has_our_flags(&entry) {
            return Err(DeviceError::Io {
                path: register,
                source: e,
            });
        }
    }
    Ok(())
}
