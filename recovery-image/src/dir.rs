//! The directory writer: the maintenance root at `/run/maintenance`, where PID 1's
//! `.s6-svscan/finish` finds the `exec` hook.
//!
//! The root is built in a sibling directory and renamed into place, so the hook PID 1 looks for
//! is either absent or belongs to a complete root: a levitate that fails half-way never leaves
//! a finish hook that would chroot into half a system at the next shutdown.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{mknodat, renameat_with, FileType, Mode, RenameFlags, CWD};

use crate::cpio::copy_exact;
use crate::tree::{Content, Node, Tree};
use crate::RecoveryError;

/// Writes `tree` at `target` (replacing an earlier root there only once the new one is whole).
pub fn write(tree: &Tree, target: &Path) -> Result<(), RecoveryError> {
    let tmp = sibling(target, "new")?;
    remove(&tmp)?;
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&tmp)
        .map_err(RecoveryError::io("creating", &tmp))?;
    let filled = fill(tree, &tmp).and_then(|()| swap_in(&tmp, target));
    // After a swap the sibling holds the earlier root; after a failure, the half-made one.
    let cleaned = remove(&tmp);
    filled?;
    cleaned
}

/// Removes the root at `target` (and the hook with it), if there is one.
pub fn remove(target: &Path) -> Result<(), RecoveryError> {
    match fs::symlink_metadata(target) {
        Ok(_) => fs::remove_dir_all(target).map_err(RecoveryError::io("removing", target)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RecoveryError::io("reading", target)(e)),
    }
}

fn sibling(target: &Path, what: &str) -> Result<PathBuf, RecoveryError> {
    let name =
        target
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| RecoveryError::BadPath {
                path: target.display().to_string(),
            })?;
    Ok(target.with_file_name(format!(".{name}.{what}")))
}

fn fill(tree: &Tree, dir: &Path) -> Result<(), RecoveryError> {
    for (rel, node) in tree.entries() {
        let path = dir.join(rel);
        match node {
            Node::Dir { mode } => {
                fs::DirBuilder::new()
                    .mode(*mode)
                    .create(&path)
                    .map_err(RecoveryError::io("creating", &path))?;
                set_mode(&path, *mode)?;
            }
            Node::File { content, mode } => file(&path, content, *mode)?,
            Node::Symlink { target } => std::os::unix::fs::symlink(target, &path)
                .map_err(RecoveryError::io("linking", &path))?,
            Node::CharDev { major, minor, mode } => mknodat(
                CWD,
                &path,
                FileType::CharacterDevice,
                Mode::from_raw_mode(*mode),
                rustix::fs::makedev(*major, *minor),
            )
            .map_err(|e| RecoveryError::io("making the device node", &path)(e.into()))?,
        }
    }
    Ok(())
}

fn file(path: &Path, content: &Content, mode: u32) -> Result<(), RecoveryError> {
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(RecoveryError::io("creating", path))?;
    match content {
        Content::Bytes(b) => f.write_all(b).map_err(RecoveryError::io("writing", path))?,
        Content::Host { path: from, len } => {
            copy_exact(from, *len, &mut f)?;
        }
    }
    // Set after the data and regardless of the umask: keys stay 0600, programs get 0755.
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), RecoveryError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(RecoveryError::io("setting the mode of", path))
}

/// Puts the finished root `tmp` at `target` in one rename, leaving an earlier root at `tmp`.
fn swap_in(tmp: &Path, target: &Path) -> Result<(), RecoveryError> {
    let flags = match fs::symlink_metadata(target) {
        Ok(_) => RenameFlags::EXCHANGE,
        Err(_) => RenameFlags::NOREPLACE,
    };
    renameat_with(CWD, tmp, CWD, target, flags)
        .map_err(|e| RecoveryError::io("renaming into", target)(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn the_directory_lists_as_described_and_replaces_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("maintenance");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("stale"), b"old").unwrap();
        let host = dir.path().join("prog");
        fs::write(&host, b"#!/bin/sh\n").unwrap();
        let mut t = Tree::new();
        t.copy("/bin/busybox", &host, 0o755).unwrap();
        t.symlink("/bin/sh", "busybox").unwrap();
        t.bytes("/etc/dropbear/key", b"secret".to_vec(), 0o600)
            .unwrap();
        t.dir("/root/.ssh", 0o700).unwrap();
        write(&t, &target).unwrap();
        let out = Command::new("find")
            .arg(".")
            .args(["-printf", "%p %y %m\n"])
            .current_dir(&target)
            .output()
            .expect("find (Debian package findutils)");
        assert!(out.status.success());
        let mut lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                ". d 755",
                "./bin d 755",
                "./bin/busybox f 755",
                "./bin/sh l 777",
                "./etc d 755",
                "./etc/dropbear d 755",
                "./etc/dropbear/key f 600",
                "./root d 755",
                "./root/.ssh d 700",
            ]
        );
        assert!(!dir.path().join(".maintenance.new").exists());
    }

    #[test]
    fn a_failed_write_leaves_the_earlier_root() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("maintenance");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("exec"), b"old hook").unwrap();
        let mut t = Tree::new();
        t.copy("/bin/x", &dir.path().join("gone-later"), 0o755)
            .unwrap_err();
        let missing = dir.path().join("vanishes");
        fs::write(&missing, b"x").unwrap();
        t.copy("/bin/x", &missing, 0o755).unwrap();
        fs::remove_file(&missing).unwrap();
        assert!(write(&t, &target).is_err());
        assert_eq!(fs::read(target.join("exec")).unwrap(), b"old hook");
        assert!(!dir.path().join(".maintenance.new").exists());
    }
}
