//! Writing the NAR of a file system path, byte-identical to `nix-store --dump`.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rustix::fs::OFlags;

use super::hash::HashingWriter;
use super::{NarError, NarHash, COPY_BUF_SIZE};

/// Serialises the file system object at `path` as a NAR into `out` and returns the sha256 and
/// size of what was written. A top-level symlink is archived as a symlink, never followed.
/// File contents are streamed through a fixed buffer.
pub fn dump(path: &Path, out: &mut dyn Write) -> Result<NarHash, NarError> {
    let mut w = HashingWriter::new(BufWriter::with_capacity(COPY_BUF_SIZE, out));
    Dumper::new(&mut w).archive(path)?;
    w.finish().map_err(NarError::Write)
}

/// sha256 and size of the NAR of `path`, without writing it anywhere.
pub fn hash_path(path: &Path) -> Result<NarHash, NarError> {
    let mut w = HashingWriter::new(io::sink());
    Dumper::new(&mut w).archive(path)?;
    w.finish().map_err(NarError::Write)
}

struct Dumper<'w, W: Write> {
    out: &'w mut HashingWriter<W>,
    buf: Vec<u8>,
}

fn fs_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> NarError + 'p {
    move |source| NarError::Fs {
        op,
        path: path.to_owned(),
        source,
    }
}

impl<'w, W: Write> Dumper<'w, W> {
    fn new(out: &'w mut HashingWriter<W>) -> Self {
        Dumper {
            out,
            buf: vec![0; COPY_BUF_SIZE],
        }
    }

    fn archive(&mut self, path: &Path) -> Result<(), NarError> {
        self.str(b"nix-archive-1")?;
        self.node(path)
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), NarError> {
        self.out.write_all(bytes).map_err(NarError::Write)
    }

    fn pad(&mut self, len: u64) -> Result<(), NarError> {
        let pad = (8 - (len % 8) as usize) % 8;
        self.raw(&[0u8; 8][..pad])
    }

    /// A NAR string: u64 LE length, the bytes, zero padding to a multiple of 8.
    fn str(&mut self, s: &[u8]) -> Result<(), NarError> {
        self.raw(&(s.len() as u64).to_le_bytes())?;
        self.raw(s)?;
        self.pad(s.len() as u64)
    }

    fn strs(&mut self, tokens: &[&[u8]]) -> Result<(), NarError> {
        tokens.iter().try_for_each(|t| self.str(t))
    }

    fn node(&mut self, path: &Path) -> Result<(), NarError> {
        let meta = fs::symlink_metadata(path).map_err(fs_err("stat", path))?;
        let ft = meta.file_type();
        self.strs(&[b"(", b"type"])?;
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(fs_err("read symlink", path))?;
            self.strs(&[b"symlink", b"target", target.as_os_str().as_bytes()])?;
        } else if ft.is_dir() {
            self.directory(path)?;
        } else if ft.is_file() {
            self.regular(path)?;
        } else {
            return Err(NarError::UnsupportedFileType {
                path: path.to_owned(),
            });
        }
        self.str(b")")
    }

    fn directory(&mut self, path: &Path) -> Result<(), NarError> {
        self.str(b"directory")?;
        let mut names = fs::read_dir(path)
            .and_then(|it| {
                it.map(|e| e.map(|e| e.file_name()))
                    .collect::<io::Result<Vec<OsString>>>()
            })
            .map_err(fs_err("read directory", path))?;
        // NAR order is by raw bytes, independent of locale.
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            self.strs(&[b"entry", b"(", b"name", name.as_bytes(), b"node"])?;
            self.node(&path.join(&name))?;
            self.str(b")")?;
        }
        Ok(())
    }

    fn regular(&mut self, path: &Path) -> Result<(), NarError> {
        // O_NOFOLLOW: the entry was a regular file when we looked; never follow a symlink that
        // replaced it since.
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(fs_err("open", path))?;
        let meta = file.metadata().map_err(fs_err("stat", path))?;
        if !meta.is_file() {
            return Err(NarError::UnsupportedFileType {
                path: path.to_owned(),
            });
        }
        self.str(b"regular")?;
        if meta.permissions().mode() & 0o100 != 0 {
            self.strs(&[b"executable", b""])?;
        }
        self.str(b"contents")?;
        let len = meta.len();
        self.raw(&len.to_le_bytes())?;
        self.copy_exact(&mut file, len, path)?;
        self.pad(len)
    }

    /// Copies exactly `len` bytes; a file that shrinks or grows meanwhile would make the length
    /// prefix a lie, so that is an error.
    fn copy_exact(&mut self, file: &mut File, len: u64, path: &Path) -> Result<(), NarError> {
        let mut left = len;
        while left > 0 {
            let chunk = left.min(self.buf.len() as u64) as usize;
            let n = match file.read(&mut self.buf[..chunk]) {
                Ok(0) => {
                    return Err(NarError::FileChanged {
                        path: path.to_owned(),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fs_err("read", path)(e)),
            };
            self.out
                .write_all(&self.buf[..n])
                .map_err(NarError::Write)?;
            left -= n as u64;
        }
        let mut probe = [0u8; 1];
        match file.read(&mut probe) {
            Ok(0) => Ok(()),
            Ok(_) => Err(NarError::FileChanged {
                path: path.to_owned(),
            }),
            Err(e) => Err(fs_err("read", path)(e)),
        }
    }
}
