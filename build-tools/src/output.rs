//! Writing the packer's outputs so that no input is ever lost.
//!
//! Every output is made under a temporary name beside its target (same directory, so the final
//! step is a rename on one filesystem), with its mode set when it is created rather than after
//! its data, and renamed into place only when it is complete: a failure leaves the target as it
//! was and removes the temporary. Before anything is written, an output that is one of the
//! command's inputs, lies inside one, or (for a directory output) holds one is refused. Paths
//! are compared both canonically and by device and inode, so that a bind mount or a second
//! name of the same directory is caught too.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::fs::{renameat_with, RenameFlags, CWD};

use crate::pack::PackError;

/// A file or directory's identity on its filesystem.
type Id = (u64, u64);

fn id(meta: &fs::Metadata) -> Id {
    (meta.dev(), meta.ino())
}

/// What a command reads: the outputs it writes must be none of these.
#[derive(Default)]
pub struct Inputs {
    files: Vec<PathBuf>,
    trees: Vec<PathBuf>,
}

impl Inputs {
    /// A file read whole (a key, an image, a board definition).
    pub fn file(&mut self, p: &Path) {
        self.files.push(p.to_owned());
    }

    /// A directory read with everything below it (a store path of the closure).
    pub fn tree(&mut self, p: &Path) {
        self.trees.push(p.to_owned());
    }

    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        self.files.iter().chain(&self.trees)
    }
}

/// Where `out` is or would be: its canonical path, and the identities of it (when it exists)
/// and of every directory above it.
struct Place {
    canonical: PathBuf,
    own: Option<Id>,
    above: HashSet<Id>,
}

fn place(out: &Path) -> Result<Place, PackError> {
    let (dir, name) = split(out)?;
    let canonical_dir = fs::canonicalize(dir).map_err(io_err("finding the directory of", out))?;
    let canonical = match fs::canonicalize(out) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => canonical_dir.join(name),
        Err(e) => return Err(io_err("resolving", out)(e)),
    };
    let own = fs::metadata(out).ok().map(|m| id(&m));
    let above = canonical
        .ancestors()
        .skip(1)
        .filter_map(|a| fs::metadata(a).ok())
        .map(|m| id(&m))
        .collect();
    Ok(Place {
        canonical,
        own,
        above,
    })
}

/// The directory and the file name of an output path.
fn split(out: &Path) -> Result<(&Path, &std::ffi::OsStr), PackError> {
    let name = out
        .file_name()
        .ok_or_else(|| PackError::OutputName(out.to_owned()))?;
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PackError + 'a {
    move |source| PackError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Every directory of a tree, by identity (symlinks are not followed: the packer reads links
/// as links).
fn tree_dirs(root: &Path, out: &mut HashSet<Id>) {
    let Ok(meta) = fs::symlink_metadata(root) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    out.insert(id(&meta));
    for e in fs::read_dir(root).into_iter().flatten().flatten() {
        tree_dirs(&e.path(), out);
    }
}

/// Refuses an output file that is an input, lies inside an input directory, or is a secret key.
pub fn check_file(out: &Path, inputs: &Inputs) -> Result<(), PackError> {
    let at = place(out)?;
    let refuse = |input: &Path| PackError::OutputIsInput {
        output: out.to_owned(),
        input: input.to_owned(),
    };
    for f in &inputs.files {
        let same_path = fs::canonicalize(f).is_ok_and(|c| c == at.canonical);
        let same_file = at.own.is_some() && fs::metadata(f).ok().map(|m| id(&m)) == at.own;
        if same_path || same_file {
            return Err(refuse(f));
        }
    }
    for t in &inputs.trees {
        let Ok(canonical) = fs::canonicalize(t) else {
            continue;
        };
        let mut dirs = HashSet::new();
        tree_dirs(&canonical, &mut dirs);
        if at.canonical.starts_with(&canonical) || !dirs.is_disjoint(&at.above) {
            return Err(refuse(t));
        }
    }
    if is_secret_key(out) {
        return Err(PackError::OutputIsKey(out.to_owned()));
    }
    Ok(())
}

/// Whether `path` holds a secret key (key files are one short line: a large file is not read).
fn is_secret_key(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= 4096)
        && liminix_bundle::SecretKey::load(path).is_ok()
}

/// Refuses an output directory that is or lies inside an input, or holds one (it is replaced
/// whole), and an existing directory that is not an earlier output of the same command.
pub fn check_dir(out: &Path, inputs: &Inputs, known: &[&str]) -> Result<(), PackError> {
    check_file(out, inputs)?;
    let at = place(out)?;
    for input in inputs.all() {
        let Ok(canonical) = fs::canonicalize(input) else {
            continue;
        };
        let held = canonical.starts_with(&at.canonical)
            || at.own.is_some_and(|own| {
                canonical
                    .ancestors()
                    .filter_map(|a| fs::metadata(a).ok())
                    .any(|m| id(&m) == own)
            });
        if held {
            return Err(PackError::OutputHoldsInput {
                output: out.to_owned(),
                input: input.to_owned(),
            });
        }
    }
    let entries = match fs::read_dir(out) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("reading", out)(e)),
    };
    for e in entries {
        let name = e.map_err(io_err("reading", out))?.file_name();
        if !known.iter().any(|k| name == *k) {
            return Err(PackError::ForeignDir {
                dir: out.to_owned(),
                entry: name.to_string_lossy().into_owned(),
            });
        }
    }
    Ok(())
}

/// A name beside `out` that no other run uses.
fn temporary(out: &Path) -> Result<PathBuf, PackError> {
    static SERIAL: AtomicU32 = AtomicU32::new(0);
    let (dir, name) = split(out)?;
    Ok(dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    )))
}

/// A temporary file beside a target, removed unless it was renamed into place.
pub struct Staged {
    pub path: PathBuf,
    pub file: File,
    kept: bool,
}

impl Staged {
    /// Creates the temporary for `out` with `mode` (before any data is in it).
    pub fn beside(out: &Path, mode: u32) -> Result<Staged, PackError> {
        let path = temporary(out)?;
        let file = File::options()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(io_err("creating", &path))?;
        Ok(Staged {
            path,
            file,
            kept: false,
        })
    }

    /// Syncs the data and renames it to `out`, replacing `out` only when `replace`.
    pub fn finish(mut self, out: &Path, replace: bool) -> Result<(), PackError> {
        self.file
            .sync_all()
            .map_err(io_err("syncing", &self.path))?;
        rename(&self.path, out, replace)?;
        self.kept = true;
        sync_parent(out)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Renames `from` to `to`; without `replace`, an existing `to` is an error and stays.
pub fn rename(from: &Path, to: &Path, replace: bool) -> Result<(), PackError> {
    let flags = match replace {
        true => RenameFlags::empty(),
        false => RenameFlags::NOREPLACE,
    };
    renameat_with(CWD, from, CWD, to, flags).map_err(|e| match e {
        rustix::io::Errno::EXIST => PackError::Exists(to.to_owned()),
        e => io_err("renaming into", to)(e.into()),
    })
}

fn sync_parent(out: &Path) -> Result<(), PackError> {
    let (dir, _) = split(out)?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing", dir))
}

/// Writes the file `out` with `mode` through `fill`, replacing an earlier `out` only when done.
pub fn write_file(
    out: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File, &Path) -> Result<(), PackError>,
) -> Result<(), PackError> {
    let mut staged = Staged::beside(out, mode)?;
    let tmp = staged.path.clone();
    fill(&mut staged.file, &tmp)?;
    staged.finish(out, true)
}

/// Builds the directory `out` through `fill` in a temporary sibling and swaps it in when done;
/// an earlier `out` is removed only after the swap, a failed build leaves nothing.
pub fn write_dir(
    out: &Path,
    fill: impl FnOnce(&Path) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::os::unix::fs::DirBuilderExt;
    let tmp = temporary(out)?;
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&tmp)
        .map_err(io_err("creating", &tmp))?;
    let swapped = fill(&tmp).and_then(|()| swap_in(&tmp, out).map_err(Into::into));
    // After a swap the temporary name holds the earlier output; after a failure, the half-made one.
    let _ = liminix_bundle::nar::remove_tree(&tmp);
    swapped?;
    sync_parent(out).map_err(Into::into)
}

/// Puts the finished directory `tmp` at `out`, atomically, leaving an earlier `out` at `tmp`.
fn swap_in(tmp: &Path, out: &Path) -> Result<(), PackError> {
    match fs::symlink_metadata(out) {
        Ok(_) => renameat_with(CWD, tmp, CWD, out, RenameFlags::EXCHANGE)
            .map_err(|e| io_err("replacing", out)(e.into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => rename(tmp, out, false),
        Err(e) => Err(io_err("reading", out)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_write_keeps_the_target_and_leaves_no_temporary() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out.bundle");
        fs::write(&out, b"earlier").unwrap();
        let r = write_file(&out, 0o644, |f, _| {
            io::Write::write_all(f, b"half").unwrap();
            Err(PackError::Nothing)
        });
        assert!(matches!(r, Err(PackError::Nothing)));
        assert_eq!(fs::read(&out).unwrap(), b"earlier");
        assert_eq!(names(t.path()), ["out.bundle"]);
        write_file(&out, 0o644, |f, _| {
            io::Write::write_all(f, b"new").map_err(io_err("writing", &out))
        })
        .unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"new");
        assert_eq!(names(t.path()), ["out.bundle"]);
    }

    #[test]
    fn a_failed_directory_build_leaves_the_earlier_one_whole() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("up");
        let r = write_dir(&out, |d| {
            fs::write(d.join("half"), b"x")?;
            Err("failed".into())
        });
        assert!(r.is_err());
        assert!(names(t.path()).is_empty(), "{:?}", names(t.path()));
        write_dir(&out, |d| Ok(fs::write(d.join("one"), b"1")?)).unwrap();
        let r = write_dir(&out, |d| {
            fs::write(d.join("two"), b"2")?;
            Err("failed".into())
        });
        assert!(r.is_err());
        assert_eq!(names(&out), ["one"]);
        write_dir(&out, |d| Ok(fs::write(d.join("two"), b"2")?)).unwrap();
        assert_eq!(names(&out), ["two"]);
        assert_eq!(names(t.path()), ["up"]);
    }

    #[test]
    fn a_secret_key_is_never_renamed_over() {
        let t = tempfile::tempdir().unwrap();
        let key = t.path().join("k.sec");
        fs::write(&key, b"secret").unwrap();
        let s = Staged::beside(&key, 0o600).unwrap();
        assert!(matches!(s.finish(&key, false), Err(PackError::Exists(_))));
        assert_eq!(fs::read(&key).unwrap(), b"secret");
        assert_eq!(names(t.path()), ["k.sec"]);
    }
}
