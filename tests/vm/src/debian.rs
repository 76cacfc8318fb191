//! The one fetcher of guest kernels and busybox for architectures other than the host's:
//! `fetch-debian.sh` downloads (never installs) Debian's kernel and busybox-static packages
//! for the architecture once into the cache and unpacks them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::kernel::Kernel;
use super::VmError;

/// A Debian architecture with a kernel flavour QEMU boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// ARMv7 (`armmp`), for `qemu-system-arm -M virt`.
    Armhf,
    /// MIPS32 little-endian (`4kc-malta`), for `qemu-system-mipsel -M malta`.
    Mipsel,
}

impl Arch {
    fn debian(self) -> (&'static str, &'static str) {
        match self {
            Arch::Armhf => ("armhf", "armmp"),
            Arch::Mipsel => ("mipsel", "4kc-malta"),
        }
    }
}

/// An unpacked Debian kernel (image and module tree) and busybox.
#[derive(Debug, Clone)]
pub struct Assets {
    pub kernel: Kernel,
    pub busybox: PathBuf,
}

fn newest(dir: &Path, prefix: &str) -> Result<PathBuf, VmError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(VmError::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    v.sort();
    v.pop().ok_or_else(|| VmError::Io {
        path: dir.join(format!("{prefix}*")),
        source: std::io::ErrorKind::NotFound.into(),
    })
}

/// Fetches (once) and locates `arch`'s kernel and busybox.
pub fn assets(arch: Arch) -> Result<Assets, VmError> {
    let (name, flavour) = arch.debian();
    let dir = crate::cache_dir("vm-debian").join(name);
    let script = crate::workspace_root().join("tests/vm/fetch-debian.sh");
    crate::run_command(
        Command::new("sh")
            .arg(&script)
            .args([name, flavour])
            .arg(&dir),
    )?;
    let root = dir.join("root");
    let modules_dir = newest(&root.join("lib/modules"), "6.")?;
    let version = modules_dir
        .file_name()
        .expect("a module directory has a name")
        .to_string_lossy()
        .into_owned();
    Ok(Assets {
        kernel: Kernel {
            image: root.join(format!("boot/vmlinuz-{version}")),
            version,
            modules_dir,
        },
        busybox: root.join("bin/busybox"),
    })
}
