//! Debian's arm64 kernel and busybox for the qemu_arm64 U-Boot bed, fetched (once, into the
//! cache) by the same `fetch-debian.sh` as the armhf and mipsel guests'. Debian's arm64
//! `vmlinuz` is a plain Image (with an EFI stub), which `booti` takes as it is.

use std::process::Command;

use crate::debian::Assets;
use crate::kernel::Kernel;
use crate::{run_command, VmError};

/// The qemu_arm64 U-Boot of Debian's u-boot-qemu.
pub const UBOOT_QEMU_ARM64: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// Fetches and locates the arm64 kernel Image, its modules and busybox.
pub fn assets() -> Result<Assets, VmError> {
    let dir = crate::cache_dir("vm-debian").join("arm64");
    let script = crate::workspace_root().join("tests/vm/fetch-debian.sh");
    run_command(
        Command::new("sh")
            .arg(&script)
            .args(["arm64", "arm64"])
            .arg(&dir),
    )?;
    let root = dir.join("root");
    let modules = root.join("lib/modules");
    let version = std::fs::read_dir(&modules)
        .map_err(VmError::io(&modules))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("6."))
        .max()
        .ok_or_else(|| VmError::Io {
            path: modules.join("6.*"),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
    let image = root.join(format!("boot/vmlinuz-{version}"));
    Ok(Assets {
        kernel: Kernel {
            image,
            modules_dir: modules.join(&version),
            version,
        },
        busybox: root.join("bin/busybox"),
    })
}
