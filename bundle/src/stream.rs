//! The bundle byte stream: header, manifest, signatures, then payload entries.
//!
//! ```text
//! "LIMINIXB"  u32le version
//! u32le len   manifest JSON (signed bytes)
//! u32le len   signatures JSON
//! entries:    u8 kind (0 = end, 1 = store path NAR, 2 = flash image)  u32le manifest index
//!             u8 encoding  [encodings 2, 3: u16le len, base store path name]
//!             chunks: u32le len, bytes … terminated by a zero length
//! ```
//! Chunked entries let a writer stream compressed data of unknown length and let a reader skip an
//! entry without decoding it. A store path entry's index points into the manifest's `paths`, an
//! image entry's into its `images`. Encoding 0 is the payload as is, 1 one zstd frame of it, 2 one
//! zstd frame holding a [`crate::delta`] (`LXD1` copy/add ops) against the NAR of the named base
//! store path, 3 a [`crate::delta_patch`] (`LXP1`, zstd frames against windows of the base)
//! against that NAR, 4 an `LXP1` patch of an image against what its target holds, which the
//! manifest's image `base` names. The same framing is the wire protocol between `update.sh` and
//! the agent: the client sends only the entries the agent
//! asked for, and only there may a store path entry be a delta (docs/bundle-format.md, "Deltas").

use std::io::{self, Read, Write};

use crate::manifest::{Manifest, ManifestError, MAX_MANIFEST_BYTES};
use crate::sign::Signature;

pub const MAGIC: &[u8; 8] = b"LIMINIXB";
pub const STREAM_VERSION: u32 = 1;
/// Largest chunk a writer emits and a reader accepts.
pub const MAX_CHUNK: u32 = 1 << 20;
const MAX_SIGNATURES_BYTES: u32 = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A store path's NAR; the index is into `Manifest::paths`.
    StorePath,
    /// A flash image; the index is into `Manifest::images`.
    Image,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::StorePath => 1,
            EntryKind::Image => 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// The NAR as is.
    Raw,
    /// One zstd frame holding the NAR.
    Zstd,
    /// One zstd frame holding a [`crate::delta`] of the NAR against the NAR of `base` (a store path
    /// the receiver has): a rebuilt package costs only its differences.
    ZstdDelta { base: String },
    /// A [`crate::delta_patch`] (`LXP1`, zstd frames against windows of the base) of the NAR
    /// against the NAR of `base`, a store path the receiver offered. Wire only, like 2.
    Patch { base: String },
    /// A [`crate::delta_patch`] of an image against the current contents of its target, which
    /// the manifest's `base` names by sha256 and size.
    ImagePatch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    pub kind: EntryKind,
    pub index: u32,
    pub encoding: Encoding,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot read the bundle")]
    Io(#[source] io::Error),
    #[error("not a Liminix bundle (bad magic)")]
    Magic,
    #[error("bundle stream version {0} is not supported (this program reads {STREAM_VERSION})")]
    Version(u32),
    #[error("{what} of {len} bytes is larger than the limit of {limit}")]
    TooLarge {
        what: &'static str,
        len: u32,
        limit: u32,
    },
    #[error("the bundle is truncated (it ends inside {0})")]
    Truncated(&'static str),
    #[error("the bundle has data after its end marker")]
    Trailing,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("signature block is malformed: {0}")]
    Signatures(serde_json::Error),
    #[error("unknown entry kind {0}")]
    Kind(u8),
    #[error("unknown entry encoding {0}")]
    EncodingCode(u8),
    #[error("entry index {index} is outside the manifest ({len} paths)")]
    Index { index: u32, len: usize },
    #[error("image entry index {index} is outside the manifest ({len} images)")]
    ImageIndex { index: u32, len: usize },
    #[error("image entry {index} uses a store path delta encoding (images are raw, zstd or image patches)")]
    ImageDelta { index: u32 },
    #[error("image entry {index} is a patch but the manifest names no base for it")]
    ImagePatchWithoutBase { index: u32 },
    #[error("store path entry {index} uses the image patch encoding")]
    PathImagePatch { index: u32 },
    #[error("delta base name is not valid UTF-8")]
    BaseName,
}

/// An early end of the stream is a truncated bundle; anything else a read failure.
impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => StreamError::Truncated(ENTRY_DATA),
            _ => StreamError::Io(e),
        }
    }
}

/// Where a stream that ends inside a chunked entry ends.
pub const ENTRY_DATA: &str = "an entry's data";

fn read_exact_or(r: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), StreamError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => StreamError::Truncated(what),
        _ => StreamError::Io(e),
    })
}

fn read_u32(r: &mut impl Read, what: &'static str) -> Result<u32, StreamError> {
    let mut b = [0u8; 4];
    read_exact_or(r, &mut b, what)?;
    Ok(u32::from_le_bytes(b))
}

fn read_block(r: &mut impl Read, what: &'static str, limit: u32) -> Result<Vec<u8>, StreamError> {
    let len = read_u32(r, what)?;
    if len > limit {
        return Err(StreamError::TooLarge { what, len, limit });
    }
    // Grows with the bytes that arrive: a length announced by a truncated stream allocates nothing.
    let mut buf = Vec::new();
    r.take(u64::from(len)).read_to_end(&mut buf)?;
    if buf.len() < len as usize {
        return Err(StreamError::Truncated(what));
    }
    Ok(buf)
}

/// The signed part of a bundle.
#[derive(Clone, Debug)]
pub struct Header {
    /// The manifest exactly as signed.
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    pub signatures: Vec<Signature>,
}

impl Header {
    pub fn read(r: &mut impl Read) -> Result<Header, StreamError> {
        let mut magic = [0u8; 8];
        read_exact_or(r, &mut magic, "the header")?;
        if &magic != MAGIC {
            return Err(StreamError::Magic);
        }
        let version = read_u32(r, "the header")?;
        if version != STREAM_VERSION {
            return Err(StreamError::Version(version));
        }
        let manifest_bytes = read_block(r, "the manifest", MAX_MANIFEST_BYTES)?;
        let sig_bytes = read_block(r, "the signatures", MAX_SIGNATURES_BYTES)?;
        let manifest = Manifest::from_bytes(&manifest_bytes)?;
        let signatures = serde_json::from_slice(&sig_bytes).map_err(StreamError::Signatures)?;
        Ok(Header {
            manifest_bytes,
            manifest,
            signatures,
        })
    }

    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(MAGIC)?;
        w.write_all(&STREAM_VERSION.to_le_bytes())?;
        let sigs = serde_json::to_vec(&self.signatures).expect("signatures serialise");
        for block in [&self.manifest_bytes, &sigs] {
            let len = u32::try_from(block.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
            w.write_all(&len.to_le_bytes())?;
            w.write_all(block)?;
        }
        Ok(())
    }
}

impl EntryHeader {
    /// Reads the next entry header; `None` at the end marker, which must be the stream's last
    /// byte: data after it is refused, as nothing signed or asked for can be there.
    pub fn read(
        r: &mut impl Read,
        manifest: &Manifest,
    ) -> Result<Option<EntryHeader>, StreamError> {
        let mut kind = [0u8; 1];
        read_exact_or(r, &mut kind, "the entry list")?;
        let kind = match kind[0] {
            0 => return expect_eof(r).map(|()| None),
            1 => EntryKind::StorePath,
            2 => EntryKind::Image,
            k => return Err(StreamError::Kind(k)),
        };
        let index = read_u32(r, "an entry's header")?;
        check_index(kind, index, manifest)?;
        let mut enc = [0u8; 1];
        read_exact_or(r, &mut enc, "an entry's header")?;
        let encoding = match enc[0] {
            0 => Encoding::Raw,
            1 => Encoding::Zstd,
            2 => Encoding::ZstdDelta {
                base: read_base_name(r)?,
            },
            3 => Encoding::Patch {
                base: read_base_name(r)?,
            },
            4 => Encoding::ImagePatch,
            e => return Err(StreamError::EncodingCode(e)),
        };
        check_encoding(kind, index, &encoding, manifest)?;
        Ok(Some(EntryHeader {
            kind,
            index,
            encoding,
        }))
    }

    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let code = match self.encoding {
            Encoding::Raw => 0u8,
            Encoding::Zstd => 1,
            Encoding::ZstdDelta { .. } => 2,
            Encoding::Patch { .. } => 3,
            Encoding::ImagePatch => 4,
        };
        w.write_all(&[self.kind.code()])?;
        w.write_all(&self.index.to_le_bytes())?;
        w.write_all(&[code])?;
        if let Encoding::ZstdDelta { base } | Encoding::Patch { base } = &self.encoding {
            let len = u16::try_from(base.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
            w.write_all(&len.to_le_bytes())?;
            w.write_all(base.as_bytes())?;
        }
        Ok(())
    }
}

fn read_base_name(r: &mut impl Read) -> Result<String, StreamError> {
    let mut len = [0u8; 2];
    read_exact_or(r, &mut len, "an entry's header")?;
    let mut name = vec![0u8; u16::from_le_bytes(len) as usize];
    read_exact_or(r, &mut name, "an entry's header")?;
    String::from_utf8(name).map_err(|_| StreamError::BaseName)
}

/// Store path deltas are for store paths, image patches for images whose manifest entry names
/// the base.
fn check_encoding(
    kind: EntryKind,
    index: u32,
    encoding: &Encoding,
    manifest: &Manifest,
) -> Result<(), StreamError> {
    let path_delta = matches!(
        encoding,
        Encoding::ZstdDelta { .. } | Encoding::Patch { .. }
    );
    match kind {
        EntryKind::Image if path_delta => Err(StreamError::ImageDelta { index }),
        EntryKind::Image
            if *encoding == Encoding::ImagePatch
                && manifest.images[index as usize].base.is_none() =>
        {
            Err(StreamError::ImagePatchWithoutBase { index })
        }
        EntryKind::StorePath if *encoding == Encoding::ImagePatch => {
            Err(StreamError::PathImagePatch { index })
        }
        _ => Ok(()),
    }
}

fn check_index(kind: EntryKind, index: u32, manifest: &Manifest) -> Result<(), StreamError> {
    let (len, err): (usize, fn(u32, usize) -> StreamError) = match kind {
        EntryKind::StorePath => (manifest.paths.len(), |index, len| StreamError::Index {
            index,
            len,
        }),
        EntryKind::Image => (manifest.images.len(), |index, len| {
            StreamError::ImageIndex { index, len }
        }),
    };
    if index as usize >= len {
        return Err(err(index, len));
    }
    Ok(())
}

/// Nothing may follow the end marker.
fn expect_eof(r: &mut impl Read) -> Result<(), StreamError> {
    let mut probe = [0u8; 1];
    loop {
        match r.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(StreamError::Trailing),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StreamError::Io(e)),
        }
    }
}

/// Writes the end-of-entries marker.
pub fn write_end(w: &mut impl Write) -> io::Result<()> {
    w.write_all(&[0])
}

/// `Write` adapter that frames everything written to it as chunks.
pub struct ChunkWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> ChunkWriter<W> {
    pub fn new(inner: W) -> Self {
        ChunkWriter {
            inner,
            buf: Vec::with_capacity(64 << 10),
        }
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let len = self.buf.len() as u32;
            self.inner.write_all(&len.to_le_bytes())?;
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes the last chunk and the terminator, and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_chunk()?;
        self.inner.write_all(&0u32.to_le_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ChunkWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.buf.capacity() - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.buf.capacity() {
            self.flush_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_chunk()?;
        self.inner.flush()
    }
}

/// `Read` adapter over one entry's chunks; returns EOF at the terminator.
pub struct ChunkReader<'a, R: Read> {
    inner: &'a mut R,
    left: u32,
    done: bool,
    truncated: bool,
    /// Framed bytes consumed from the inner stream (chunk headers included).
    pub wire_bytes: u64,
}

impl<'a, R: Read> ChunkReader<'a, R> {
    pub fn new(inner: &'a mut R) -> Self {
        ChunkReader {
            inner,
            left: 0,
            done: false,
            truncated: false,
            wire_bytes: 0,
        }
    }

    /// Reads and discards the rest of the entry; returns how many payload bytes were left.
    pub fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the stream ended inside this entry: then whatever a decoder made of the missing
    /// bytes, the bundle is truncated ([`StreamError::Truncated`] at [`ENTRY_DATA`]).
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl<R: Read> Read for ChunkReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut len = [0u8; 4];
            self.inner
                .read_exact(&mut len)
                .inspect_err(|e| self.truncated = e.kind() == io::ErrorKind::UnexpectedEof)?;
            self.wire_bytes += 4;
            let len = u32::from_le_bytes(len);
            if len > MAX_CHUNK {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("entry chunk of {len} bytes exceeds the {MAX_CHUNK} limit"),
                ));
            }
            if len == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = len;
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.truncated = true;
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u32;
        self.wire_bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_roundtrip_and_stop_at_terminator() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = ChunkWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let mut framed = w.finish().unwrap();
        framed.extend_from_slice(b"after");
        let mut cursor = io::Cursor::new(framed);
        let mut out = Vec::new();
        ChunkReader::new(&mut cursor).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        let mut rest = Vec::new();
        cursor.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"after");
    }

    fn image_manifest() -> Manifest {
        use crate::manifest::{Generation, ImageEntry, FORMAT_VERSION};
        Manifest {
            format: FORMAT_VERSION,
            board: "b".into(),
            generation: Generation {
                toplevel: String::new(),
                build_time: 0,
            },
            epoch: 0,
            paths: Vec::new(),
            images: vec![ImageEntry {
                name: "firmware".into(),
                target: "mtd:firmware".into(),
                sha256: "00".repeat(32),
                size: 1,
                base: None,
            }],
        }
    }

    #[test]
    fn image_entry_headers_roundtrip_and_are_checked() {
        let m = image_manifest();
        let h = EntryHeader {
            kind: EntryKind::Image,
            index: 0,
            encoding: Encoding::Zstd,
        };
        let mut bytes = Vec::new();
        h.write(&mut bytes).unwrap();
        assert_eq!(bytes[0], 2);
        let got = EntryHeader::read(&mut io::Cursor::new(&bytes), &m).unwrap();
        assert_eq!(got, Some(h));
        // A store-path entry cannot point into `images`.
        bytes[0] = 1;
        let err = EntryHeader::read(&mut io::Cursor::new(&bytes), &m).unwrap_err();
        assert!(
            matches!(err, StreamError::Index { index: 0, len: 0 }),
            "{err}"
        );
        // Index past the images.
        let mut bytes = Vec::new();
        EntryHeader {
            index: 1,
            ..got.unwrap()
        }
        .write(&mut bytes)
        .unwrap();
        let err = EntryHeader::read(&mut io::Cursor::new(&bytes), &m).unwrap_err();
        assert!(
            matches!(err, StreamError::ImageIndex { index: 1, len: 1 }),
            "{err}"
        );
        // Images never come as deltas.
        let mut bytes = Vec::new();
        EntryHeader {
            kind: EntryKind::Image,
            index: 0,
            encoding: Encoding::ZstdDelta { base: "x".into() },
        }
        .write(&mut bytes)
        .unwrap();
        let err = EntryHeader::read(&mut io::Cursor::new(&bytes), &m).unwrap_err();
        assert!(matches!(err, StreamError::ImageDelta { index: 0 }), "{err}");
    }

    /// Image patches only for images whose manifest entry names a base; store path deltas never
    /// for images; patch headers with a base name roundtrip.
    #[test]
    fn patch_encodings_are_checked_against_kind_and_manifest() {
        let read = |h: EntryHeader, m: &Manifest| {
            let mut bytes = Vec::new();
            h.write(&mut bytes).unwrap();
            EntryHeader::read(&mut io::Cursor::new(&bytes), m)
        };
        let image = |encoding| EntryHeader {
            kind: EntryKind::Image,
            index: 0,
            encoding,
        };
        let mut m = image_manifest();
        let err = read(image(Encoding::ImagePatch), &m).unwrap_err();
        assert!(
            matches!(err, StreamError::ImagePatchWithoutBase { index: 0 }),
            "{err}"
        );
        m.images[0].base = Some(crate::manifest::ImageBase {
            sha256: "11".repeat(32),
            size: 5,
        });
        assert_eq!(
            read(image(Encoding::ImagePatch), &m).unwrap(),
            Some(image(Encoding::ImagePatch))
        );
        let err = read(image(Encoding::Patch { base: "x".into() }), &m).unwrap_err();
        assert!(matches!(err, StreamError::ImageDelta { index: 0 }), "{err}");
        let paths = Manifest {
            paths: vec![crate::manifest::PathEntry {
                path: "/nix/store/00000000000000000000000000000000-x".into(),
                nar_sha256: "00".repeat(32),
                nar_size: 1,
                entries: 1,
            }],
            images: Vec::new(),
            ..image_manifest()
        };
        let path = |encoding| EntryHeader {
            kind: EntryKind::StorePath,
            index: 0,
            encoding,
        };
        let err = read(path(Encoding::ImagePatch), &paths).unwrap_err();
        assert!(
            matches!(err, StreamError::PathImagePatch { index: 0 }),
            "{err}"
        );
        let p = path(Encoding::Patch { base: "b-x".into() });
        assert_eq!(read(p.clone(), &paths).unwrap(), Some(p));
    }

    #[test]
    fn oversized_chunk_is_refused() {
        let mut framed = (MAX_CHUNK + 1).to_le_bytes().to_vec();
        framed.extend_from_slice(&[0; 16]);
        let mut cursor = io::Cursor::new(framed);
        let err = ChunkReader::new(&mut cursor).drain().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    fn empty_manifest() -> Manifest {
        Manifest {
            images: Vec::new(),
            ..image_manifest()
        }
    }

    #[test]
    fn data_after_the_end_marker_is_refused() {
        let m = empty_manifest();
        let mut bytes = Vec::new();
        write_end(&mut bytes).unwrap();
        assert_eq!(EntryHeader::read(&mut &bytes[..], &m).unwrap(), None);
        bytes.push(0);
        let err = EntryHeader::read(&mut &bytes[..], &m).unwrap_err();
        assert!(matches!(err, StreamError::Trailing), "{err}");
        assert_eq!(err.to_string(), "the bundle has data after its end marker");
    }

    #[test]
    fn a_stream_that_ends_inside_an_entry_is_truncated() {
        let mut w = ChunkWriter::new(Vec::new());
        w.write_all(&[7; 100]).unwrap();
        let framed = w.finish().unwrap();
        let mut cut = &framed[..50];
        let mut reader = ChunkReader::new(&mut cut);
        let err = reader.drain().unwrap_err();
        assert!(reader.truncated());
        assert_eq!(
            StreamError::from(err).to_string(),
            "the bundle is truncated (it ends inside an entry's data)"
        );
        let mut whole = &framed[..];
        let mut reader = ChunkReader::new(&mut whole);
        reader.drain().unwrap();
        assert!(!reader.truncated());
        let err = EntryHeader::read(&mut &[][..], &empty_manifest()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the bundle is truncated (it ends inside the entry list)"
        );
    }
}
