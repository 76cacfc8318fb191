//! Creating a file tree from an untrusted NAR.
//!
//! Every object is created relative to the descriptor of its already-created parent directory,
//! with `O_EXCL`/`O_NOFOLLOW` semantics (`mkdirat`, `openat`, `symlinkat`), so a symlink that an
//! earlier entry created is never traversed and no entry can land outside the destination.
//! Modes and mtimes are those of the Nix store: files 0444 or 0555, directories 0555 (set when
//! the directory is complete), mtime 1. Nothing is fsynced here; the caller syncs the file system
//! once at the end, which is far cheaper on flash than a sync per file.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps, CWD, UTIME_OMIT};

use super::parse::{parse, Sink};
use super::{NarError, NarHash, RestoreOptions};

/// Parses the NAR in `input` and creates it at `dest`, which must not exist (its parent must).
/// Consumes exactly the NAR's bytes, hashing them, and returns the hash and size. On error `dest`
/// may be partially created; remove it with [`super::remove_tree`].
pub fn restore(
    input: &mut dyn Read,
    dest: &Path,
    opts: &RestoreOptions,
) -> Result<NarHash, NarError> {
    let mut sink = FsSink::new(dest)?;
    parse(input, opts.max_size, &mut sink)
}

/// Parses and hashes a NAR without writing anything, consuming exactly its bytes.
pub fn verify_stream(input: &mut dyn Read, opts: &RestoreOptions) -> Result<NarHash, NarError> {
    parse(input, opts.max_size, &mut NullSink)
}

struct NullSink;

impl Sink for NullSink {
    fn dest(&self) -> &Path {
        Path::new("(nowhere)")
    }
    fn enter_dir(&mut self, _: Option<&[u8]>) -> io::Result<()> {
        Ok(())
    }
    fn leave_dir(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn symlink(&mut self, _: Option<&[u8]>, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn begin_file(&mut self, _: Option<&[u8]>, _: bool, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn file_data(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn end_file(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The mtime of everything in the Nix store.
const STORE_MTIME: Timestamps = Timestamps {
    last_access: Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_OMIT,
    },
    last_modification: Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    },
};

struct FsSink {
    dest: PathBuf,
    /// The directory `dest` is created in.
    root_parent: OwnedFd,
    root_name: Vec<u8>,
    /// Open directories from the top-level one down to the one being filled.
    dirs: Vec<OwnedFd>,
    file: Option<(File, bool)>,
}

impl FsSink {
    fn new(dest: &Path) -> Result<Self, NarError> {
        let bad = |reason| NarError::BadDestination {
            path: dest.to_owned(),
            reason,
        };
        let name = match dest.file_name() {
            Some(n) if dest.ends_with(n) => n,
            _ => return Err(bad("it does not end in a file name")),
        };
        if dest.symlink_metadata().is_ok() {
            return Err(bad("it already exists"));
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root_parent =
            rustix::fs::openat(CWD, parent, flags, Mode::empty()).map_err(|e| NarError::Fs {
                op: "open parent directory of",
                path: dest.to_owned(),
                source: e.into(),
            })?;
        Ok(FsSink {
            dest: dest.to_owned(),
            root_parent,
            root_name: name.as_bytes().to_vec(),
            dirs: Vec::new(),
            file: None,
        })
    }

    /// The directory the next object is created in, and its name there.
    fn place<'a>(&'a self, name: Option<&'a [u8]>) -> (BorrowedFd<'a>, &'a OsStr) {
        let dir = self.dirs.last().unwrap_or(&self.root_parent).as_fd();
        (dir, OsStr::from_bytes(name.unwrap_or(&self.root_name)))
    }
}

impl Sink for FsSink {
    fn dest(&self) -> &Path {
        &self.dest
    }

    fn enter_dir(&mut self, name: Option<&[u8]>) -> io::Result<()> {
        let (dir, name) = self.place(name);
        rustix::fs::mkdirat(dir, name, Mode::RWXU)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
        self.dirs.push(fd);
        Ok(())
    }

    fn leave_dir(&mut self) -> io::Result<()> {
        let fd = self
            .dirs
            .pop()
            .ok_or_else(|| io::Error::other("no open directory"))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o555))?;
        rustix::fs::futimens(&fd, &STORE_MTIME)?;
        Ok(())
    }

    fn symlink(&mut self, name: Option<&[u8]>, target: &[u8]) -> io::Result<()> {
        let (dir, name) = self.place(name);
        rustix::fs::symlinkat(OsStr::from_bytes(target), dir, name)?;
        rustix::fs::utimensat(dir, name, &STORE_MTIME, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    fn begin_file(&mut self, name: Option<&[u8]>, executable: bool, _size: u64) -> io::Result<()> {
        let (dir, name) = self.place(name);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(dir, name, flags, Mode::RUSR | Mode::WUSR)?;
        self.file = Some((File::from(fd), executable));
        Ok(())
    }

    fn file_data(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some((f, _)) => f.write_all(data),
            None => Err(io::Error::other("no open file")),
        }
    }

    fn end_file(&mut self) -> io::Result<()> {
        let (file, executable) = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("no open file"))?;
        let mode = if executable { 0o555 } else { 0o444 };
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
        rustix::fs::futimens(&file, &STORE_MTIME)?;
        Ok(())
    }
}
