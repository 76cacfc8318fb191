//! UBI volume update strategies and their building blocks.
//!
//! **Swap** (preferred, needs free space): create `<name>.new`, fill it with
//! one volume update, read it back and compare the hash, then one atomic
//! `UBI_IOCRNVOL` renames `<name>.new` → `<name>` and `<name>` → `<name>.old`.
//! The previous image stays as `<name>.old` for [`rollback`] until [`gc_old`]
//! removes it; if an older `<name>.old` still exists it is removed before the
//! new volume is made when the space is needed, otherwise the rename replaces
//! it in the same atomic step (the kernel deletes a volume whose name is taken
//! by a rename).
//!
//! **In place** (only when the caller allows it): one `UBI_IOCVOLUP` on the
//! existing volume; the old image is gone as soon as it starts. The agent must
//! refuse it while the volume is mounted ([`crate::mounts`]).
//!
//! Sizes are checked by [`plan`] before any write. The journalled
//! transactions built from these steps live in [`crate::txn`].

use sha2::{Digest, Sha256};

use crate::image::{read_full, ImageSource};
use crate::progress::{Progress, Stage};
use crate::ubi::{Ubi, UbiError, UbiVolume, VolKind};

/// Suffix of the volume being staged by a swap update.
pub const NEW_SUFFIX: &str = ".new";
/// Suffix under which the previous image is kept after a swap.
pub const OLD_SUFFIX: &str = ".old";

/// `<name>.new`.
pub fn new_name(name: &str) -> String {
    format!("{name}{NEW_SUFFIX}")
}

/// `<name>.old`.
pub fn old_name(name: &str) -> String {
    format!("{name}{OLD_SUFFIX}")
}

/// Caller's choices for a UBI update.
#[derive(Debug, Clone, Default)]
pub struct UbiOptions {
    /// Size of the new volume; default: the current volume's reserved size,
    /// or the image size (rounded up to LEBs) if that is larger or there is none.
    pub volume_bytes: Option<u64>,
    /// Fall back to an in-place update when a swap does not fit.
    pub allow_in_place: bool,
    /// Use an in-place update even if a swap would fit.
    pub force_in_place: bool,
    /// Type of a volume created where none exists yet; a swap otherwise keeps
    /// the current volume's type.
    pub kind: VolKind,
    /// The SHA-256 the image was verified against: a swap that wrote something
    /// else does not switch, an in-place update does not start.
    pub expect_sha256: Option<[u8; 32]>,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UbiPlan {
    /// Stage a new volume of `volume_bytes` and switch by rename.
    Swap {
        /// Size of the staged volume.
        volume_bytes: u64,
        /// Type of the staged volume.
        kind: VolKind,
        /// The current volume, if any (becomes `<name>.old`).
        current: Option<UbiVolume>,
        /// Volumes (stale `.new`/`.old`) to remove first to make room.
        remove_first: Vec<UbiVolume>,
    },
    /// Overwrite `current` with a volume update.
    InPlace {
        /// The volume being overwritten.
        current: UbiVolume,
    },
}

/// Why an update cannot be done; decided before any write.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The image is larger than the volume it would go into.
    #[error("image of {image} bytes is larger than volume {volume:?} ({capacity} bytes)")]
    TooLarge {
        volume: String,
        image: u64,
        capacity: u64,
    },
    /// A swap does not fit and in-place was not allowed (or there is no volume to update in place).
    #[error("no room for a swap update of {volume:?}: need {need} bytes, {avail} free; in-place not allowed")]
    NoSpace {
        volume: String,
        need: u64,
        avail: u64,
    },
    /// Querying the device failed.
    #[error(transparent)]
    Ubi(#[from] UbiError),
}

/// Decide how to update volume `name` with `len` bytes. Does no writes.
pub fn plan(
    ubi: &mut dyn Ubi,
    name: &str,
    len: u64,
    opts: &UbiOptions,
) -> Result<UbiPlan, PlanError> {
    let leb = ubi.leb_size()?;
    let current = ubi.volume_by_name(name)?;
    if let (Some(cur), true) = (&current, opts.force_in_place) {
        return in_place(cur.clone(), len);
    }
    let reserved = current.as_ref().map_or(0, |v| v.reserved_bytes);
    let volume_bytes = opts
        .volume_bytes
        .unwrap_or(reserved.max(len.div_ceil(leb) * leb));
    if len > volume_bytes {
        return Err(PlanError::TooLarge {
            volume: name.to_string(),
            image: len,
            capacity: volume_bytes,
        });
    }
    let avail = ubi.avail_bytes()?;
    let need = volume_bytes.div_ceil(leb) * leb;
    let mut remove_first = Vec::new();
    let mut room = avail;
    // A leftover `.new` has to go anyway: mkvol of that name would fail.
    if let Some(v) = ubi.volume_by_name(&new_name(name))? {
        room += v.reserved_bytes;
        remove_first.push(v);
    }
    if room < need {
        if let Some(v) = ubi.volume_by_name(&old_name(name))? {
            room += v.reserved_bytes;
            remove_first.push(v);
        }
    }
    match (room >= need, current) {
        (true, current) => Ok(UbiPlan::Swap {
            volume_bytes: need,
            kind: current.as_ref().map_or(opts.kind, |c| c.kind),
            current,
            remove_first,
        }),
        (false, Some(cur)) if opts.allow_in_place => in_place(cur, len),
        (false, _) => Err(PlanError::NoSpace {
            volume: name.to_string(),
            need,
            avail,
        }),
    }
}

fn in_place(current: UbiVolume, len: u64) -> Result<UbiPlan, PlanError> {
    if len > current.reserved_bytes {
        return Err(PlanError::TooLarge {
            volume: current.name,
            image: len,
            capacity: current.reserved_bytes,
        });
    }
    Ok(UbiPlan::InPlace { current })
}

/// Errors of the building blocks below.
#[derive(Debug, thiserror::Error)]
pub enum VolumeWriteError {
    /// Reading the image source failed or it was short.
    #[error("reading image source: {0}")]
    Source(#[source] std::io::Error),
    /// A UBI operation failed.
    #[error(transparent)]
    Ubi(#[from] UbiError),
}

/// Replace the contents of volume `id` with the image (one volume update) and
/// sync the device; returns the SHA-256 of the bytes written.
pub fn write_volume(
    ubi: &mut dyn Ubi,
    id: u32,
    src: &dyn ImageSource,
    progress: &mut dyn Progress,
) -> Result<[u8; 32], VolumeWriteError> {
    let len = src.len();
    let mut reader = src.open().map_err(VolumeWriteError::Source)?;
    let mut up = ubi.start_update(id, len)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    progress.begin(Stage::Writing, len);
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        let n = read_full(&mut reader, &mut buf[..want]).map_err(VolumeWriteError::Source)?;
        if n < want {
            let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "image source is short");
            return Err(VolumeWriteError::Source(e));
        }
        up.write(&buf[..n])?;
        hasher.update(&buf[..n]);
        done += n as u64;
        progress.advance(done);
    }
    up.finish()?;
    ubi.sync()?;
    Ok(hasher.finalize().into())
}

/// Whether the first `len` bytes of volume `id` hash to `sha`. A corrupted
/// (interrupted) volume does not match.
pub fn volume_matches(
    ubi: &mut dyn Ubi,
    id: u32,
    len: u64,
    sha: &[u8; 32],
) -> Result<bool, UbiError> {
    let mut r = match ubi.open_read(id) {
        Ok(r) => r,
        Err(UbiError::Corrupted(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = read_full(&mut r, &mut buf[..want]).map_err(|source| UbiError::Io {
            op: "read volume",
            source,
        })?;
        if n == 0 {
            return Ok(false);
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(&<[u8; 32]>::from(hasher.finalize()) == sha)
}

/// Whether volume `id` holds exactly the image: the volume is read back and
/// compared with the source byte for byte (cheaper than hashing it again). A
/// corrupted (interrupted) or short volume does not match.
pub fn volume_equals(
    ubi: &mut dyn Ubi,
    id: u32,
    src: &dyn ImageSource,
    progress: &mut dyn Progress,
) -> Result<bool, VolumeWriteError> {
    let mut vol = match ubi.open_read(id) {
        Ok(r) => r,
        Err(UbiError::Corrupted(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let mut img = src.open().map_err(VolumeWriteError::Source)?;
    let (mut have, mut want) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let len = src.len();
    let mut done = 0u64;
    progress.begin(Stage::Verifying, len);
    while done < len {
        let n = (len - done).min(want.len() as u64) as usize;
        if read_full(&mut img, &mut want[..n]).map_err(VolumeWriteError::Source)? < n {
            let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "image source is short");
            return Err(VolumeWriteError::Source(e));
        }
        let got = read_full(&mut vol, &mut have[..n]).map_err(|source| UbiError::Io {
            op: "read volume",
            source,
        })?;
        if got < n || have[..n] != want[..n] {
            return Ok(false);
        }
        done += n as u64;
        progress.advance(done);
    }
    Ok(true)
}

/// Remove the rollback copy `<name>.old` durably; returns whether there was one.
pub fn gc_old(ubi: &mut dyn Ubi, name: &str) -> Result<bool, UbiError> {
    match ubi.volume_by_name(&old_name(name))? {
        Some(v) => {
            ubi.remove_volume(v.id)?;
            ubi.sync().map(|()| true)
        }
        None => Ok(false),
    }
}

/// Make `<name>.old` the active `<name>` again, keeping the current one as
/// `<name>.old` (one atomic rename, synced). Returns false if there is nothing to roll back to.
pub fn rollback(ubi: &mut dyn Ubi, name: &str) -> Result<bool, UbiError> {
    let Some(old) = ubi.volume_by_name(&old_name(name))? else {
        return Ok(false);
    };
    let old_n = old_name(name);
    match ubi.volume_by_name(name)? {
        Some(cur) => ubi.rename_volumes(&[(old.id, name), (cur.id, &old_n)])?,
        None => ubi.rename_volumes(&[(old.id, name)])?,
    }
    ubi.sync()?;
    Ok(true)
}

/// Read volume `name` for a bootloader-style check: `None` when it is absent,
/// corrupted or shorter than `len`.
pub fn read_named(ubi: &mut dyn Ubi, name: &str, len: u64) -> Result<Option<Vec<u8>>, UbiError> {
    match ubi.volume_by_name(name)? {
        Some(v) => crate::ubi::read_volume(ubi, v.id, len),
        None => Ok(None),
    }
}
