//! Materialise store paths on disk the way Nix leaves them: built under a
//! temporary name, canonicalised (0444/0555, directories 0555, mtime 1) and
//! renamed into place, so a path that exists is always complete.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};

use super::layout::Entry;
use super::ClosureError;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClosureError + '_ {
    move |source| ClosureError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `STORE_ROOT/nix/store/<name>` for a `/nix/store/<name>` path.
pub fn on_disk(store_root: &Path, store_path: &str) -> PathBuf {
    store_root.join(store_path.trim_start_matches('/'))
}

/// Write one store path unless it already exists; returns its file bytes.
pub fn store_path(
    store_root: &Path,
    store_path: &str,
    entries: &[Entry],
) -> Result<u64, ClosureError> {
    let dest = on_disk(store_root, store_path);
    if dest.symlink_metadata().is_ok() {
        return tree_bytes(&dest);
    }
    let parent = dest.parent().expect("store paths have a parent");
    fs::create_dir_all(parent).map_err(io(parent))?;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = parent.join(format!(
        ".tmp-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    fs::create_dir(&tmp).map_err(io(&tmp))?;
    let result = populate(&tmp, entries).and_then(|()| canonicalise(&tmp));
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match fs::rename(&tmp, &dest) {
        // Another writer got there first with identical content.
        Err(_) if dest.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
        }
        r => r.map_err(io(&dest))?,
    }
    tree_bytes(&dest)
}

fn populate(dir: &Path, entries: &[Entry]) -> Result<(), ClosureError> {
    for e in entries {
        match e {
            Entry::Dir(rel) => {
                let p = dir.join(rel);
                fs::create_dir_all(&p).map_err(io(&p))?;
            }
            Entry::File { rel, bytes, exec } => {
                let p = dir.join(rel);
                fs::write(&p, bytes).map_err(io(&p))?;
                let mode = if *exec { 0o555 } else { 0o444 };
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io(&p))?;
            }
            Entry::Symlink { rel, target } => {
                let p = dir.join(rel);
                symlink(target, &p).map_err(io(&p))?;
            }
        }
    }
    Ok(())
}

/// Children first, so setting a directory's mtime is the last change to it.
fn canonicalise(path: &Path) -> Result<(), ClosureError> {
    let meta = path.symlink_metadata().map_err(io(path))?;
    if meta.is_dir() {
        for child in fs::read_dir(path).map_err(io(path))? {
            canonicalise(&child.map_err(io(path))?.path())?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o555)).map_err(io(path))?;
    }
    let one = Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: one,
        last_modification: one,
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| ClosureError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Total size of the regular files below `path`.
pub fn tree_bytes(path: &Path) -> Result<u64, ClosureError> {
    let meta = path.symlink_metadata().map_err(io(path))?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    if !meta.is_dir() {
        return Ok(0);
    }
    let mut total = 0;
    for child in fs::read_dir(path).map_err(io(path))? {
        total += tree_bytes(&child.map_err(io(path))?.path())?;
    }
    Ok(total)
}
