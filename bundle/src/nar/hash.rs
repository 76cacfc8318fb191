//! Byte counting and sha256 on both sides of the NAR stream, so the hash is always of exactly
//! the bytes that were written or consumed.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::NarHash;

/// Wraps the output of [`super::dump`]: every byte written is hashed and counted.
pub(crate) struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    pub(crate) fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(())
    }

    /// Flushes the inner writer and returns the hash, consuming the writer.
    pub(crate) fn finish(mut self) -> io::Result<NarHash> {
        self.inner.flush()?;
        Ok(NarHash {
            sha256: self.hasher.finalize().into(),
            size: self.size,
        })
    }
}

/// Outcome of a bounded read that did not deliver the requested bytes.
pub(crate) enum ReadFailure {
    /// The stream ended early.
    Eof,
    /// Reading would take the NAR past `max_size`.
    TooLarge(u64),
    Io(io::Error),
}

/// Wraps the input of the parser: reads exactly what is asked (never ahead), hashes and counts it,
/// and refuses to read past the configured maximum size.
pub(crate) struct NarReader<'a> {
    inner: &'a mut dyn Read,
    hasher: Sha256,
    offset: u64,
    max_size: Option<u64>,
}

impl<'a> NarReader<'a> {
    pub(crate) fn new(inner: &'a mut dyn Read, max_size: Option<u64>) -> Self {
        NarReader {
            inner,
            hasher: Sha256::new(),
            offset: 0,
            max_size,
        }
    }

    /// Number of bytes consumed so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Fails with `TooLarge` unless `len` more bytes fit within the maximum size. Called before
    /// large reads so an oversized file is refused before any of it is written.
    pub(crate) fn reserve(&self, len: u64) -> Result<(), ReadFailure> {
        let Some(max) = self.max_size else {
            return Ok(());
        };
        match self.offset.checked_add(len) {
            Some(end) if end <= max => Ok(()),
            _ => Err(ReadFailure::TooLarge(max)),
        }
    }

    pub(crate) fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ReadFailure> {
        self.reserve(buf.len() as u64)?;
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.hasher.update(&*buf);
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ReadFailure::Eof),
            Err(e) => Err(ReadFailure::Io(e)),
        }
    }

    pub(crate) fn finish(self) -> NarHash {
        NarHash {
            sha256: self.hasher.finalize().into(),
            size: self.offset,
        }
    }
}
