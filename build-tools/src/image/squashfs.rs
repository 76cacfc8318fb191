//! Squashfs images of a root tree (a closure toplevel or any directory) for the kernel to mount
//! read-only: format 4.0, xz or gzip compression, symlinks, modes and hard links kept.
//!
//! Built by `mksquashfs` (squashfs-tools), an external build-host tool, as Liminix does. The
//! maintained Rust writer, `backhand` (0.25.5), was tried: its output is a 4.0 image that
//! `unsquashfs` reads, but its writer has no way to add a hard link (every pushed file becomes its
//! own inode with a link count of 1), and Nix stores optimised with hard links hand us closure
//! trees that have them; its writer also offers no way to set the root directory's time (it came
//! out as 1970 while every other inode had the time asked). `squashfs-ng` binds the C library and
//! says it does not handle hard links either. `mksquashfs` is the format's reference writer, keeps
//! hard links, and has the reproducibility switches used below.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The tool this module runs; named in errors so a missing install is obvious.
pub const TOOL: &str = "mksquashfs";

/// Compressors offered: the two most kernel configurations enable (the board's kernel decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Xz,
    Gzip,
}

impl Compression {
    fn name(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Gzip => "gzip",
        }
    }
}

/// How to build the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SquashfsSpec {
    pub compression: Compression,
    /// Every inode's mtime and the superblock's creation time; the caller passes
    /// [`super::timestamp`] (`SOURCE_DATE_EPOCH`).
    pub epoch: u64,
    /// Data block size in bytes (a power of two, 4 KiB to 1 MiB); `None` keeps the tool's 128 KiB.
    pub block_size: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SquashfsError {
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("cannot run {TOOL} (install squashfs-tools): {0}")]
    Spawn(io::Error),
    #[error("{TOOL} {} -> {} failed ({status}): {stderr}", src.display(), out.display())]
    Failed {
        src: PathBuf,
        out: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// The command line. Ownership becomes root's (a build runs unprivileged, the device expects
/// root-owned files), all times become the epoch, xattrs of the build host are dropped, and
/// `-reproducible` makes the output independent of the number of threads. Directory entries are
/// always sorted by name in squashfs, so no order switch is needed. `SOURCE_DATE_EPOCH` is removed
/// from the child's environment because this version refuses it together with the time switches.
fn command(src: &Path, out: &Path, spec: &SquashfsSpec) -> Command {
    let epoch = spec.epoch.to_string();
    let mut cmd = Command::new(TOOL);
    cmd.arg(src)
        .arg(out)
        .args(["-noappend", "-comp", spec.compression.name()])
        .args(["-all-root", "-no-xattrs", "-reproducible"])
        .args(["-all-time", &epoch, "-mkfs-time", &epoch])
        .args(["-quiet", "-no-progress"])
        .env_remove("SOURCE_DATE_EPOCH");
    if let Some(b) = spec.block_size {
        cmd.args(["-b", &b.to_string()]);
    }
    cmd
}

/// Writes the squashfs image of the tree at `src` to `out`, replacing it.
pub fn write(src: &Path, spec: &SquashfsSpec, out: &Path) -> Result<(), SquashfsError> {
    if !src.is_dir() {
        return Err(SquashfsError::NotADirectory(src.to_owned()));
    }
    let done = command(src, out, spec)
        .output()
        .map_err(SquashfsError::Spawn)?;
    if !done.status.success() {
        return Err(SquashfsError::Failed {
            src: src.to_owned(),
            out: out.to_owned(),
            status: done.status,
            stderr: String::from_utf8_lossy(&done.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
