//! btrfs subvolumes and snapshots, the operations `btrfs subvolume` and schnapps use, through
//! the kernel's ioctls (`BTRFS_IOC_SNAP_CREATE_V2`, `SUBVOL_CREATE_V2`, `SNAP_DESTROY`,
//! `SUBVOL_GETFLAGS`/`SETFLAGS`) so that the static agent needs no btrfs-progs. The raw calls
//! are in the private `sys` module, the only `unsafe` code; everything here checks its inputs
//! first. [`probe`] recognises a btrfs filesystem on a block device by its superblock.

mod error;
pub mod probe;
#[allow(unsafe_code)]
mod sys;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use error::BtrfsError;

/// `BTRFS_SUPER_MAGIC`, the `f_type` statfs reports.
const SUPER_MAGIC: i64 = 0x9123_683E;
/// The inode number of every subvolume's root directory (`BTRFS_FIRST_FREE_OBJECTID`).
const SUBVOL_ROOT_INODE: u64 = 256;

/// The ioctl request codes this crate uses, by name, for tests and documentation.
pub fn request_codes() -> [(&'static str, u32); 5] {
    [
        ("BTRFS_IOC_SNAP_CREATE_V2", sys::SNAP_CREATE_V2),
        ("BTRFS_IOC_SUBVOL_CREATE_V2", sys::SUBVOL_CREATE_V2),
        ("BTRFS_IOC_SNAP_DESTROY", sys::SNAP_DESTROY),
        ("BTRFS_IOC_SUBVOL_GETFLAGS", sys::SUBVOL_GETFLAGS),
        ("BTRFS_IOC_SUBVOL_SETFLAGS", sys::SUBVOL_SETFLAGS),
    ]
}

fn open_dir(path: &Path) -> Result<File, BtrfsError> {
    File::open(path).map_err(BtrfsError::io("opening", path))
}

/// Whether `path` is on btrfs.
pub fn is_btrfs(path: &Path) -> Result<bool, BtrfsError> {
    let dir = open_dir(path)?;
    let st = rustix::fs::fstatfs(&dir).map_err(BtrfsError::ioctl("statfs", path))?;
    // f_type is 32 bits wide on 32-bit targets, where the magic reads as negative.
    #[allow(clippy::unnecessary_cast)]
    let f_type = st.f_type as i64 & 0xffff_ffff;
    Ok(f_type == SUPER_MAGIC)
}

/// Whether `path` is the root directory of a subvolume on btrfs.
pub fn is_subvolume(path: &Path) -> Result<bool, BtrfsError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(m.ino() == SUBVOL_ROOT_INODE && is_btrfs(path)?),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(BtrfsError::io("reading", path)(e)),
    }
}

fn require_subvolume(path: &Path) -> Result<(), BtrfsError> {
    if !is_btrfs(path)? {
        return Err(BtrfsError::NotBtrfs { path: path.into() });
    }
    if !is_subvolume(path)? {
        return Err(BtrfsError::NotSubvolume { path: path.into() });
    }
    Ok(())
}

/// Checks a name for a new subvolume entry: one path component the kernel accepts.
pub fn check_name(name: &str, max: usize) -> Result<(), BtrfsError> {
    let bad = |why| {
        Err(BtrfsError::BadName {
            name: name.into(),
            why,
        })
    };
    if name.is_empty() || name == "." || name == ".." {
        return bad("empty, `.` or `..`");
    }
    if name.contains('/') || name.contains('\0') {
        return bad("it holds `/` or a NUL byte");
    }
    if name.len() >= max {
        return bad("longer than btrfs allows");
    }
    Ok(())
}

fn v2_args(fd: i64, flags: u64, name: &str) -> Result<sys::VolArgsV2, BtrfsError> {
    check_name(name, sys::V2_NAME_LEN)?;
    let mut args = sys::VolArgsV2 {
        fd,
        transid: 0,
        flags,
        unused: [0; 4],
        name: [0; sys::V2_NAME_LEN],
    };
    args.name[..name.len()].copy_from_slice(name.as_bytes());
    Ok(args)
}

/// Makes `dir/name` a snapshot of the subvolume `source`; read-only when `read_only`.
pub fn snapshot(
    source: &Path,
    dir: &Path,
    name: &str,
    read_only: bool,
) -> Result<PathBuf, BtrfsError> {
    require_subvolume(source)?;
    let src = open_dir(source)?;
    let parent = open_dir(dir)?;
    let flags = if read_only { sys::SUBVOL_RDONLY } else { 0 };
    let fd = i64::from(std::os::fd::AsRawFd::as_raw_fd(&src));
    let args = v2_args(fd, flags, name)?;
    let target = dir.join(name);
    sys::snap_create_v2(&parent, args).map_err(BtrfsError::ioctl("snapshotting into", &target))?;
    Ok(target)
}

/// Makes `dir/name` a new, empty subvolume.
pub fn create_subvolume(dir: &Path, name: &str) -> Result<PathBuf, BtrfsError> {
    if !is_btrfs(dir)? {
        return Err(BtrfsError::NotBtrfs { path: dir.into() });
    }
    let parent = open_dir(dir)?;
    let args = v2_args(0, 0, name)?;
    let target = dir.join(name);
    sys::subvol_create_v2(&parent, args)
        .map_err(BtrfsError::ioctl("creating subvolume", &target))?;
    Ok(target)
}

/// Deletes the subvolume `dir/name` with everything in it (read-only ones too).
pub fn delete_subvolume(dir: &Path, name: &str) -> Result<(), BtrfsError> {
    check_name(name, sys::V1_NAME_LEN)?;
    let target = dir.join(name);
    require_subvolume(&target)?;
    let parent = open_dir(dir)?;
    let mut args = sys::VolArgs {
        fd: 0,
        name: [0; sys::V1_NAME_LEN],
    };
    args.name[..name.len()].copy_from_slice(name.as_bytes());
    sys::snap_destroy(&parent, args).map_err(BtrfsError::ioctl("deleting subvolume", &target))
}

/// Whether the subvolume at `path` is read-only.
pub fn is_read_only(path: &Path) -> Result<bool, BtrfsError> {
    require_subvolume(path)?;
    let f = open_dir(path)?;
    let flags = sys::subvol_getflags(&f).map_err(BtrfsError::ioctl("reading flags of", path))?;
    Ok(flags & sys::SUBVOL_RDONLY != 0)
}

/// Makes the subvolume at `path` read-only or writable, keeping its other flags.
pub fn set_read_only(path: &Path, read_only: bool) -> Result<(), BtrfsError> {
    require_subvolume(path)?;
    let f = open_dir(path)?;
    let flags = sys::subvol_getflags(&f).map_err(BtrfsError::ioctl("reading flags of", path))?;
    let new = match read_only {
        true => flags | sys::SUBVOL_RDONLY,
        false => flags & !sys::SUBVOL_RDONLY,
    };
    sys::subvol_setflags(&f, new).map_err(BtrfsError::ioctl("setting flags of", path))
}
