//! Flash images in bundles: the manifest entries (the board definition decides each image's target) and
//! the framed, compressed payload entries.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use liminix_boards::Board;
use liminix_bundle::manifest::{ImageBase, ImageEntry};
use liminix_bundle::stream::{ChunkReader, ChunkWriter, Encoding, EntryHeader, EntryKind};
use sha2::{Digest, Sha256};

use crate::pack::PackError;

/// `--image NAME=FILE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInput {
    pub name: String,
    pub file: PathBuf,
    /// What the device holds at the image's target now (`--delta-base NAME=FILE`): the entry
    /// is then a patch against it (encoding 4), and the manifest names it by sha256 and size.
    pub base: Option<PathBuf>,
}

impl std::str::FromStr for ImageInput {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, file) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not NAME=FILE"))?;
        if name.is_empty() || file.is_empty() {
            return Err(format!("{s:?} is not NAME=FILE"));
        }
        Ok(ImageInput {
            name: name.to_owned(),
            file: PathBuf::from(file),
            base: None,
        })
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PackError + 'a {
    move |source| PackError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// sha256 and length of a file, read once.
pub fn hash_file(path: &Path) -> Result<([u8; 32], u64), PackError> {
    let mut r = BufReader::new(File::open(path).map_err(io_err("opening", path))?);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut len = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(io_err("reading", path))?;
        if n == 0 {
            return Ok((h.finalize().into(), len));
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
}

/// The largest image the board's targets for `name` take (the smaller slot on A/B boards).
fn max_size(board: &Board, name: &str) -> Result<u64, PackError> {
    let slots: Vec<Option<&str>> = if board.strategy.is_ab() {
        board.slots.iter().map(|s| Some(s.name.as_str())).collect()
    } else {
        vec![None]
    };
    let mut max = u64::MAX;
    for s in slots {
        max = max.min(board.resolve(name, s)?.max_size);
    }
    Ok(max)
}

/// Manifest entries for the images, sorted by name, each checked against the board.
pub fn entries(board: &Board, images: &[ImageInput]) -> Result<Vec<ImageEntry>, PackError> {
    let mut out = Vec::with_capacity(images.len());
    for i in images {
        let target = board
            .manifest_target(&i.name)
            .ok_or_else(|| PackError::ImageNotOnBoard {
                image: i.name.clone(),
                board: board.name.clone(),
                known: board
                    .images
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let (sha, size) = hash_file(&i.file)?;
        let max = max_size(board, &i.name)?;
        if size > max {
            return Err(PackError::ImageTooLarge {
                image: i.name.clone(),
                size,
                max,
            });
        }
        if size == 0 {
            return Err(PackError::Corrupt {
                path: i.file.display().to_string(),
                detail: "image file is empty".into(),
            });
        }
        out.push(ImageEntry {
            name: i.name.clone(),
            target,
            sha256: hex::encode(sha),
            size,
            base: match &i.base {
                Some(file) => {
                    let (sha, size) = hash_file(file)?;
                    if size == 0 {
                        return Err(PackError::Corrupt {
                            path: file.display().to_string(),
                            detail: "delta base file is empty".into(),
                        });
                    }
                    Some(ImageBase {
                        sha256: hex::encode(sha),
                        size,
                    })
                }
                None => None,
            },
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = out.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(PackError::DuplicateImage(w[0].name.clone()));
    }
    Ok(out)
}

/// Writes image entry `index` (`file`) to `w`: zstd at `level`, or raw when `level` is `None`.
pub fn write_entry(
    w: &mut impl Write,
    index: u32,
    file: &Path,
    level: Option<i32>,
) -> Result<(), PackError> {
    let encoding = if level.is_some() {
        Encoding::Zstd
    } else {
        Encoding::Raw
    };
    EntryHeader {
        kind: EntryKind::Image,
        index,
        encoding,
    }
    .write(w)
    .map_err(io_err("writing", file))?;
    let mut src = BufReader::new(File::open(file).map_err(io_err("opening", file))?);
    let framed = ChunkWriter::new(w);
    let framed = match level {
        Some(level) => {
            let mut enc = zstd::stream::write::Encoder::new(framed, level)
                .map_err(io_err("compressing", file))?;
            enc.include_checksum(false)
                .map_err(io_err("compressing", file))?;
            io::copy(&mut src, &mut enc).map_err(io_err("compressing", file))?;
            enc.finish().map_err(io_err("compressing", file))?
        }
        None => {
            let mut framed = framed;
            io::copy(&mut src, &mut framed).map_err(io_err("reading", file))?;
            framed
        }
    };
    framed.finish().map_err(io_err("writing", file))?;
    Ok(())
}

/// Writes image `index` as a patch of `file` against `base` (encoding 4), frames at zstd
/// `level`. Both are read into memory: the packer runs on a build host.
pub fn write_patch_entry(
    w: &mut impl Write,
    index: u32,
    file: &Path,
    base: &Path,
    level: i32,
) -> Result<(), PackError> {
    let target = std::fs::read(file).map_err(io_err("reading", file))?;
    let base_bytes = std::fs::read(base).map_err(io_err("reading", base))?;
    let patch = liminix_bundle::delta_patch::encode(&base_bytes, &target, level)
        .map_err(|e| io_err("compressing", file)(io::Error::other(e.to_string())))?;
    EntryHeader {
        kind: EntryKind::Image,
        index,
        encoding: Encoding::ImagePatch,
    }
    .write(w)
    .map_err(io_err("writing", file))?;
    let mut framed = ChunkWriter::new(w);
    framed.write_all(&patch).map_err(io_err("writing", file))?;
    framed.finish().map_err(io_err("writing", file))?;
    Ok(())
}

/// Decodes one image entry's payload into `out`, returning its sha256 and length; reads at most
/// one byte past `size`, so a padded entry is caught without decoding it all.
/// Checks an image patch entry without its base: its header must name the manifest's base and
/// the image's size, and its segments must frame exactly the rest of the entry.
pub fn check_patch_entry<R: Read>(
    chunks: &mut ChunkReader<'_, R>,
    e: &ImageEntry,
) -> io::Result<()> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let h = liminix_bundle::delta_patch::PatchHeader::read(chunks)?;
    let base = e
        .base
        .as_ref()
        .ok_or_else(|| bad("an image patch without a base in the manifest".into()))?;
    if h.target_len != e.size
        || h.base_len != base.size
        || hex::encode(h.base_sha256) != base.sha256
    {
        return Err(bad(format!(
            "the patch makes {} bytes from a base of {} bytes with sha256 {}, the manifest says {} from {} with {}",
            h.target_len,
            h.base_len,
            hex::encode(h.base_sha256),
            e.size,
            base.size,
            base.sha256
        )));
    }
    liminix_bundle::delta_patch::check_segments(chunks, &h)
}

pub fn decode_entry<R: Read>(
    chunks: &mut ChunkReader<'_, R>,
    encoding: &Encoding,
    size: u64,
    out: &mut dyn Write,
) -> io::Result<([u8; 32], u64)> {
    let mut h = Sha256::new();
    let mut sink = HashingWriter { h: &mut h, out };
    let n = match encoding {
        Encoding::Raw => io::copy(&mut chunks.take(size.saturating_add(1)), &mut sink)?,
        Encoding::Zstd => {
            let mut dec = zstd::stream::read::Decoder::new(&mut *chunks)?.single_frame();
            io::copy(&mut (&mut dec).take(size.saturating_add(1)), &mut sink)?
        }
        Encoding::ZstdDelta { .. } | Encoding::Patch { .. } | Encoding::ImagePatch => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an image patch cannot be decoded without its base",
            ))
        }
    };
    if chunks.drain()? > 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "trailing data after the image",
        ));
    }
    Ok((h.finalize().into(), n))
}

struct HashingWriter<'a> {
    h: &'a mut Sha256,
    out: &'a mut dyn Write,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.h.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
