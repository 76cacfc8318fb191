//! Keeping the image where recovery can find it again.
//!
//! A raw write or an in-place UBI update that is cut off can only be finished
//! from the same image, so before the first write the image is staged as
//! `JOURNAL/staging/<key>.img`: a hard link when the image is on the
//! journal's filesystem (free), a copy when the journal is persistent and has
//! room, otherwise the image's own path is recorded and must be kept until
//! the write is done. Recovery checks the staged bytes against the journalled
//! SHA-256 before using them, so a file changed in between is never written.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::flashops::journal_dir::JournalLocation;
use crate::flashops::{io_err, FlashOpError};

/// Spare bytes left on the journal filesystem after a staging copy.
const COPY_MARGIN: u64 = 1 << 20;

/// How the image was made available to recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageKind {
    /// Hard link in the staging directory.
    Link,
    /// Copy in the staging directory.
    Copy,
    /// The original path; the caller must keep the file.
    Original,
}

/// A staged image.
#[derive(Debug, Clone)]
pub struct Staged {
    /// Path to hand to the writer (and thus recorded as the journal's source).
    pub path: PathBuf,
    /// How it was staged.
    pub kind: StageKind,
}

/// Name of the staged file of journal key `key`.
pub fn staged_path(loc: &JournalLocation, key: &str) -> PathBuf {
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    loc.staging().join(format!("{safe}.img"))
}

/// Stage `image` for the transaction `key`.
pub fn stage(loc: &JournalLocation, key: &str, image: &Path) -> Result<Staged, FlashOpError> {
    let dest = staged_path(loc, key);
    remove_if_exists(&dest)?;
    let original = fs::canonicalize(image).map_err(|source| FlashOpError::Image {
        path: image.to_path_buf(),
        source,
    })?;
    if fs::hard_link(&original, &dest).is_ok() {
        sync_dir(&loc.staging())?;
        return Ok(Staged {
            path: dest,
            kind: StageKind::Link,
        });
    }
    let len = fs::metadata(&original)
        .map_err(io_err("stat", &original))?
        .len();
    if loc.persistent && free_bytes(&loc.staging()) >= len + COPY_MARGIN {
        copy_synced(&original, &dest)?;
        sync_dir(&loc.staging())?;
        return Ok(Staged {
            path: dest,
            kind: StageKind::Copy,
        });
    }
    Ok(Staged {
        path: original,
        kind: StageKind::Original,
    })
}

/// After a transaction: keep the staged image only while a journal record may still need it.
pub fn settle(
    journal: &mut impl liminix_flash::journal::JournalStore,
    loc: &JournalLocation,
    key: &str,
) -> Result<(), FlashOpError> {
    match journal.load(key)? {
        Some(_) => Ok(()),
        None => discard(loc, key),
    }
}

/// Remove the staged file of `key`, if any.
pub fn discard(loc: &JournalLocation, key: &str) -> Result<(), FlashOpError> {
    remove_if_exists(&staged_path(loc, key))
}

/// Takes back a journal directory that was made (by [`JournalLocation::lock`]) for an apply
/// that was then refused: its lock file, removed while still held so that no other agent can be
/// locking a file about to go, and the directories made for it. `made` comes from
/// [`super::missing_dirs`] before the lock was taken; a journal that existed stays.
pub fn remove_made(loc: &JournalLocation, made: &[PathBuf]) {
    if made.contains(&loc.dir) {
        let _ = fs::remove_file(loc.dir.join("lock"));
        super::remove_made(made);
    }
}

fn remove_if_exists(p: &Path) -> Result<(), FlashOpError> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", p)(e)),
        _ => Ok(()),
    }
}

fn copy_synced(from: &Path, to: &Path) -> Result<(), FlashOpError> {
    let tmp = to.with_extension("part");
    let mut src = File::open(from).map_err(io_err("open", from))?;
    let mut dst = File::create(&tmp).map_err(io_err("create", &tmp))?;
    let copied = io::copy(&mut src, &mut dst)
        .and_then(|_| dst.sync_all())
        .map_err(io_err("copy to", &tmp))
        .and_then(|()| fs::rename(&tmp, to).map_err(io_err("rename", to)));
    if copied.is_err() {
        // A half copy is of no use to recovery, which checks the staged bytes' hash anyway.
        let _ = fs::remove_file(&tmp);
    }
    copied
}

/// Bytes available on the filesystem of `dir` (0 when it cannot be asked).
fn free_bytes(dir: &Path) -> u64 {
    super::free_space(dir).map_or(0, |(available, _, _)| available)
}

fn sync_dir(dir: &Path) -> Result<(), FlashOpError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::DeviceRoot;

    #[test]
    fn links_on_the_same_filesystem_and_discards() {
        let t = tempfile::tempdir().unwrap();
        let loc = JournalLocation::locate(&DeviceRoot::new(t.path()), Some(&t.path().join("j")));
        let _lock = loc.lock().unwrap();
        let img = t.path().join("a.img");
        fs::write(&img, b"image").unwrap();
        let s = stage(&loc, "mtd:kernel", &img).unwrap();
        assert_eq!(s.kind, StageKind::Link);
        assert_eq!(s.path, loc.staging().join("mtd_kernel.img"));
        assert_eq!(fs::read(&s.path).unwrap(), b"image");
        discard(&loc, "mtd:kernel").unwrap();
        assert!(!s.path.exists());
        assert!(img.exists(), "the original stays");
        discard(&loc, "mtd:kernel").unwrap();
    }

    #[test]
    fn missing_image_is_an_image_error() {
        let t = tempfile::tempdir().unwrap();
        let loc = JournalLocation::locate(&DeviceRoot::new(t.path()), Some(&t.path().join("j")));
        let _lock = loc.lock().unwrap();
        let e = stage(&loc, "k", &t.path().join("nope")).unwrap_err();
        assert!(matches!(e, FlashOpError::Image { .. }), "{e}");
    }
}
