//! Deleting a tree whose directories are read-only, as a restored store path is.

use std::ffi::CStr;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

/// Recursively deletes `path` (a file, symlink or directory tree), making directories writable
/// as needed. Symlinks are removed, never followed. A missing `path` is not an error.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    let dir = open_dir(CWD, path)?;
    empty_dir(&dir)?;
    drop(dir);
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn open_dir<Fd: std::os::fd::AsFd, P: rustix::path::Arg>(at: Fd, path: P) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(at, path, flags, Mode::empty())?;
    // Write permission is needed to unlink the entries.
    rustix::fs::fchmod(&fd, Mode::RWXU)?;
    Ok(fd)
}

/// Removes every entry of the open directory `dir`.
fn empty_dir(dir: &OwnedFd) -> io::Result<()> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push((name.to_owned(), entry.file_type()));
        }
    }
    for (name, ft) in names {
        remove_entry(dir, &name, ft)?;
    }
    Ok(())
}

fn remove_entry(dir: &OwnedFd, name: &CStr, ft: FileType) -> io::Result<()> {
    let is_dir = match ft {
        FileType::Unknown => rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)?,
        ft => ft == FileType::Directory,
    };
    if is_dir {
        let sub = open_dir(dir, name)?;
        empty_dir(&sub)?;
    }
    let flags = if is_dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    match rustix::fs::unlinkat(dir, name, flags) {
        Err(Errno::NOENT) => Ok(()),
        other => Ok(other?),
    }
}
