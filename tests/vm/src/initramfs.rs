//! The one initramfs builder of every guest: files, host executables with the shared
//! libraries they link (the one library copier), and kernel modules with their dependencies
//! and a matching modules.dep, written as a newc cpio archive.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio::Cpio;
use super::kernel::{self, Kernel, ModuleDeps};
use super::VmError;

/// An initramfs being assembled in memory.
#[derive(Default)]
pub struct Initramfs {
    cpio: Cpio,
    libs: BTreeSet<PathBuf>,
}

fn read(path: &Path) -> Result<Vec<u8>, VmError> {
    std::fs::read(path).map_err(VmError::io(path))
}

/// Shared libraries `ldd` reports for `bin` (absolute paths; none if static).
pub fn shared_libs(bin: &Path) -> Result<Vec<PathBuf>, VmError> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .map_err(|e| VmError::Command {
            command: format!("ldd {}", bin.display()),
            detail: e.to_string(),
        })?;
    // A static executable makes ldd fail with nothing on stdout: no libraries.
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect())
}

impl Initramfs {
    pub fn new() -> Self {
        Self::default()
    }

    /// A file with `data` and permission bits `mode` at the absolute guest path `guest`.
    pub fn bytes(&mut self, guest: &str, data: &[u8], mode: u32) {
        self.cpio.file(guest, data, mode);
    }

    /// A directory (and its parents).
    pub fn dir(&mut self, guest: &str) {
        self.cpio.dir(guest);
    }

    pub fn symlink(&mut self, guest: &str, target: &str) {
        self.cpio.symlink(guest, target);
    }

    /// A copy of the host file `host` with its permission bits.
    pub fn copy(&mut self, host: &Path, guest: &str) -> Result<(), VmError> {
        let meta = std::fs::metadata(host).map_err(VmError::io(host))?;
        let data = read(host)?;
        self.cpio.file(guest, &data, meta.permissions().mode());
        Ok(())
    }

    /// A host executable at `guest` with the shared libraries `ldd` lists for it, each at
    /// the path the dynamic loader asks for.
    pub fn executable(&mut self, host: &Path, guest: &str) -> Result<(), VmError> {
        self.cpio.file(guest, &read(host)?, 0o755);
        for lib in shared_libs(host)? {
            if !self.libs.insert(lib.clone()) {
                continue;
            }
            let real = std::fs::canonicalize(&lib).map_err(VmError::io(&lib))?;
            self.cpio.file(&lib.to_string_lossy(), &read(&real)?, 0o755);
        }
        Ok(())
    }

    /// The host program `name` (e.g. mtd-utils' `ubinfo`) as /usr/sbin/NAME, with its libraries.
    pub fn host_tool(&mut self, name: &str) -> Result<(), VmError> {
        let path = crate::which(name).ok_or_else(|| VmError::MissingTool {
            tool: name.to_string(),
            package: package_of(name),
        })?;
        self.executable(&path, &format!("/usr/sbin/{name}"))
    }

    /// Kernel modules `names`, everything they depend on, and a modules.dep for exactly
    /// those, so busybox `modprobe NAME` works in the guest. Compressed modules are
    /// unpacked: busybox modprobe has no decompressor.
    pub fn modules(&mut self, kernel: &Kernel, names: &[String]) -> Result<(), VmError> {
        if names.is_empty() {
            return Ok(());
        }
        let deps = ModuleDeps::load(kernel)?;
        let paths = deps.closure(names)?;
        let base = format!("/lib/modules/{}", kernel.version);
        for rel in &paths {
            let data = kernel::read_module(kernel, rel)?;
            self.cpio
                .file(&format!("{base}/{}", kernel::plain_ko(rel)), &data, 0o644);
        }
        let dep = deps.filtered(&paths);
        self.cpio
            .file(&format!("{base}/modules.dep"), dep.as_bytes(), 0o644);
        Ok(())
    }

    /// The archive bytes.
    pub fn finish(self) -> Vec<u8> {
        self.cpio.finish()
    }

    /// Writes the archive to `path`.
    pub fn write(self, path: &Path) -> Result<(), VmError> {
        std::fs::write(path, self.finish()).map_err(VmError::io(path))
    }
}

/// The Debian package of a host program guests use, for the missing-tool message.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "fw_printenv" | "fw_setenv" => "libubootenv-tool",
        "mkenvimage" | "mkimage" => "u-boot-tools",
        "mksquashfs" | "unsquashfs" => "squashfs-tools",
        _ => "mtd-utils",
    }
}
