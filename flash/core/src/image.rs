//! Image sources that can be opened again, so an interrupted write can be
//! re-run after a reboot from the same verified bytes.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// A re-openable, fixed-size image.
pub trait ImageSource {
    /// Image length in bytes.
    fn len(&self) -> u64;
    /// A fresh reader positioned at the start of the image.
    fn open(&self) -> io::Result<Box<dyn Read + '_>>;
    /// Human-readable origin, for messages and journal hints.
    fn describe(&self) -> String;

    /// Whether the image is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// SHA-256 of the whole image; fails if the source is shorter than `len`.
    fn sha256(&self) -> io::Result<[u8; 32]> {
        let mut r = self.open()?;
        let mut h = Sha256::new();
        let n = io::copy(&mut r.by_ref().take(self.len()), &mut HashWriter(&mut h))?;
        if n != self.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "image source is shorter than announced",
            ));
        }
        Ok(h.finalize().into())
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// SHA-256 of a byte slice.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// An image held in memory.
#[derive(Debug, Clone)]
pub struct MemImage(pub Vec<u8>);

impl ImageSource for MemImage {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(&self.0[..]))
    }
    fn describe(&self) -> String {
        format!("memory image ({} bytes)", self.0.len())
    }
}

/// An image in a file (the agent's verified staging copy).
#[derive(Debug, Clone)]
pub struct FileImage {
    path: PathBuf,
    len: u64,
}

impl FileImage {
    /// Open `path` and remember its current length.
    pub fn new(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let len = std::fs::metadata(&path)?.len();
        Ok(FileImage { path, len })
    }
}

impl ImageSource for FileImage {
    fn len(&self) -> u64 {
        self.len
    }
    fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(io::BufReader::new(File::open(&self.path)?)))
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// Fill `buf` from `r` as far as possible; returns the number of bytes read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
