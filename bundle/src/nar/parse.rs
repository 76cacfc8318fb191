//! Strict NAR parser for untrusted input. It accepts only the canonical encoding that
//! `nix-store --dump` produces and hands each object to a [`Sink`] as soon as it is parsed, so
//! file contents stream through a fixed buffer.

use std::io;
use std::path::Path;

use super::hash::{NarReader, ReadFailure};
use super::{NarError, NarHash, COPY_BUF_SIZE};

/// Longest framing token ("nix-archive-1" is the longest valid one).
const MAX_TOKEN: usize = 16;
/// Longest entry name: NAME_MAX of Linux file systems.
const MAX_NAME: usize = 255;
/// Longest symlink target: PATH_MAX minus the terminating NUL.
const MAX_TARGET: usize = 4095;
/// Deepest directory nesting accepted. Restoring keeps one descriptor open per level, and real
/// store paths are far shallower.
pub(crate) const MAX_DEPTH: usize = 256;

/// Receives the objects of a NAR in stream order. `name` is `None` for the top-level object.
/// Errors are plain I/O errors; the parser adds which entry and operation they belong to.
pub(crate) trait Sink {
    /// Destination shown in error messages.
    fn dest(&self) -> &Path;
    fn enter_dir(&mut self, name: Option<&[u8]>) -> io::Result<()>;
    fn leave_dir(&mut self) -> io::Result<()>;
    fn symlink(&mut self, name: Option<&[u8]>, target: &[u8]) -> io::Result<()>;
    fn begin_file(&mut self, name: Option<&[u8]>, executable: bool, size: u64) -> io::Result<()>;
    fn file_data(&mut self, data: &[u8]) -> io::Result<()>;
    fn end_file(&mut self) -> io::Result<()>;
}

/// Parses one NAR from `input` into `sink`, consuming exactly its bytes.
pub(crate) fn parse(
    input: &mut dyn io::Read,
    max_size: Option<u64>,
    sink: &mut dyn Sink,
) -> Result<NarHash, NarError> {
    let mut p = Parser {
        r: NarReader::new(input, max_size),
        sink,
        path: Vec::new(),
        buf: Vec::new(),
    };
    let magic_ok = p.token()? == b"nix-archive-1";
    if !magic_ok {
        return Err(NarError::BadMagic);
    }
    p.node(None)?;
    Ok(p.r.finish())
}

struct Parser<'a> {
    r: NarReader<'a>,
    sink: &'a mut dyn Sink,
    /// Names of the directories entered, for error messages and the depth limit.
    path: Vec<Vec<u8>>,
    /// Copy buffer for file contents, allocated on the first file.
    buf: Vec<u8>,
}

impl Parser<'_> {
    /// Where we are in the archive, e.g. `/bin/sh`, for error messages.
    fn entry(&self) -> String {
        if self.path.is_empty() {
            return "/".to_owned();
        }
        self.path
            .iter()
            .map(|n| format!("/{}", String::from_utf8_lossy(n)))
            .collect()
    }

    fn read_err(&self, failure: ReadFailure) -> NarError {
        let (offset, entry) = (self.r.offset(), self.entry());
        match failure {
            ReadFailure::Eof => NarError::Truncated { offset, entry },
            ReadFailure::TooLarge(max) => NarError::TooLarge { offset, entry, max },
            ReadFailure::Io(source) => NarError::Read { offset, source },
        }
    }

    fn sink_err(&self, op: &'static str, offset: u64) -> impl FnOnce(io::Error) -> NarError {
        let (entry, dest) = (self.entry(), self.sink.dest().to_owned());
        move |source| NarError::Create {
            op,
            entry,
            offset,
            dest,
            source,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), NarError> {
        self.r.read_exact(buf).map_err(|f| self.read_err(f))
    }

    fn read_u64(&mut self) -> Result<u64, NarError> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn padding(&mut self, len: u64) -> Result<(), NarError> {
        let pad = (8 - (len % 8) as usize) % 8;
        let offset = self.r.offset();
        let mut b = [0u8; 8];
        self.read_exact(&mut b[..pad])?;
        if b.iter().any(|&x| x != 0) {
            return Err(NarError::BadPadding {
                offset,
                entry: self.entry(),
            });
        }
        Ok(())
    }

    /// Reads a NAR string of at most `max` bytes.
    fn string(&mut self, what: &'static str, max: usize) -> Result<Vec<u8>, NarError> {
        let offset = self.r.offset();
        let len = self.read_u64()?;
        if len > max as u64 {
            let entry = self.entry();
            return Err(NarError::TooLong {
                offset,
                entry,
                what,
                len,
                max: max as u64,
            });
        }
        let mut s = vec![0u8; len as usize];
        self.read_exact(&mut s)?;
        self.padding(len)?;
        Ok(s)
    }

    fn token(&mut self) -> Result<Vec<u8>, NarError> {
        self.string("token", MAX_TOKEN)
    }

    fn expect(&mut self, expected: &'static str) -> Result<(), NarError> {
        let offset = self.r.offset();
        let found = self.token()?;
        if found == expected.as_bytes() {
            return Ok(());
        }
        Err(self.unexpected(offset, expected, &found))
    }

    fn unexpected(&self, offset: u64, expected: &'static str, found: &[u8]) -> NarError {
        NarError::UnexpectedToken {
            offset,
            entry: self.entry(),
            expected,
            found: String::from_utf8_lossy(found).into_owned(),
        }
    }

    /// `( type <kind> ... )`; the opening "(" is consumed here, the closing ")" too.
    fn node(&mut self, name: Option<&[u8]>) -> Result<(), NarError> {
        self.expect("(")?;
        self.expect("type")?;
        let offset = self.r.offset();
        match self.token()?.as_slice() {
            b"regular" => self.regular(name),
            b"symlink" => self.symlink(name),
            b"directory" => self.directory(name),
            other => Err(self.unexpected(offset, "regular, symlink or directory", other)),
        }
    }

    fn regular(&mut self, name: Option<&[u8]>) -> Result<(), NarError> {
        let offset = self.r.offset();
        let mut tag = self.token()?;
        let executable = tag == b"executable";
        if executable {
            self.expect("")?;
            tag = self.token()?;
        }
        if tag != b"contents" {
            return Err(self.unexpected(offset, "executable or contents", &tag));
        }
        let len = self.read_u64()?;
        // Refuse an oversized file before creating it: the padded contents and the node's
        // closing ")" (16 bytes) must all fit.
        let needed = len.saturating_add(7) & !7;
        self.r
            .reserve(needed.saturating_add(16))
            .map_err(|f| self.read_err(f))?;
        let at = self.r.offset();
        self.sink
            .begin_file(name, executable, len)
            .map_err(self.sink_err("create file", at))?;
        self.contents(len)?;
        self.sink
            .end_file()
            .map_err(self.sink_err("finish file", at))?;
        self.padding(len)?;
        self.expect(")")
    }

    fn contents(&mut self, len: u64) -> Result<(), NarError> {
        if self.buf.is_empty() {
            self.buf = vec![0; COPY_BUF_SIZE];
        }
        let mut buf = std::mem::take(&mut self.buf);
        let mut left = len;
        let result = loop {
            if left == 0 {
                break Ok(());
            }
            let chunk = &mut buf[..left.min(COPY_BUF_SIZE as u64) as usize];
            let at = self.r.offset();
            if let Err(e) = self.read_exact(chunk) {
                break Err(e);
            }
            if let Err(e) = self.sink.file_data(chunk) {
                break Err(self.sink_err("write file", at)(e));
            }
            left -= chunk.len() as u64;
        };
        self.buf = buf;
        result
    }

    fn symlink(&mut self, name: Option<&[u8]>) -> Result<(), NarError> {
        self.expect("target")?;
        let offset = self.r.offset();
        let target = self.string("symlink target", MAX_TARGET)?;
        let reason = if target.is_empty() {
            Some("empty")
        } else if target.contains(&0) {
            Some("contains a NUL byte")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(NarError::BadSymlinkTarget {
                offset,
                entry: self.entry(),
                target: String::from_utf8_lossy(&target).into_owned(),
                reason,
            });
        }
        self.sink
            .symlink(name, &target)
            .map_err(self.sink_err("create symlink", offset))?;
        self.expect(")")
    }

    fn directory(&mut self, name: Option<&[u8]>) -> Result<(), NarError> {
        let at = self.r.offset();
        self.sink
            .enter_dir(name)
            .map_err(self.sink_err("create directory", at))?;
        let mut prev: Option<Vec<u8>> = None;
        loop {
            let offset = self.r.offset();
            match self.token()?.as_slice() {
                b")" => break,
                b"entry" => {}
                other => return Err(self.unexpected(offset, "entry or )", other)),
            }
            let child = self.entry_header(prev.as_deref())?;
            self.child(&child)?;
            prev = Some(child);
        }
        let at = self.r.offset();
        self.sink
            .leave_dir()
            .map_err(self.sink_err("finish directory", at))
    }

    /// `( name <name> node`: reads and validates the entry name.
    fn entry_header(&mut self, prev: Option<&[u8]>) -> Result<Vec<u8>, NarError> {
        self.expect("(")?;
        self.expect("name")?;
        let offset = self.r.offset();
        let name = self.string("entry name", MAX_NAME)?;
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if let Some(reason) = name_problem(&name) {
            return Err(NarError::BadName {
                offset,
                entry: self.entry(),
                name: lossy(&name),
                reason,
            });
        }
        if let Some(prev) = prev.filter(|p| *p >= name.as_slice()) {
            return Err(NarError::Unsorted {
                offset,
                entry: self.entry(),
                prev: lossy(prev),
                name: lossy(&name),
            });
        }
        self.expect("node")?;
        Ok(name)
    }

    /// The node of a directory entry and the entry's closing ")".
    fn child(&mut self, name: &[u8]) -> Result<(), NarError> {
        self.path.push(name.to_vec());
        if self.path.len() > MAX_DEPTH {
            return Err(NarError::TooDeep {
                offset: self.r.offset(),
                entry: self.entry(),
                max: MAX_DEPTH,
            });
        }
        self.node(Some(name))?;
        self.path.pop();
        self.expect(")")
    }
}

/// Names Nix's own parser rejects; any of them would let an entry escape or alias its directory.
fn name_problem(name: &[u8]) -> Option<&'static str> {
    match name {
        b"" => Some("empty"),
        b"." | b".." => Some("\".\" and \"..\" are not allowed"),
        _ if name.contains(&b'/') => Some("contains '/'"),
        _ if name.contains(&0) => Some("contains a NUL byte"),
        _ => None,
    }
}
