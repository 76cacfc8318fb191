//! Streams the bundle's image entries into staging files, hashing as they are written, so that
//! every image is complete and verified before the first flash write. Store path entries (of a
//! mixed bundle) are skipped.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use liminix_bundle::stream::{ChunkReader, Encoding, EntryHeader, EntryKind};
use liminix_bundle::{ImageEntry, Manifest};
use sha2::{Digest, Sha256};

use crate::apply::bases::ImageBases;
use crate::apply::ApplyError;
use crate::error::{AgentError, PayloadError, Result};
use crate::staging::free_space;

/// Room left on the staging filesystem beyond the images.
const STAGING_MARGIN: u64 = 256 << 10;

/// One verified image in the staging directory.
#[derive(Clone, Debug)]
pub struct StagedFile {
    pub name: String,
    pub path: PathBuf,
    pub sha256: [u8; 32],
    pub size: u64,
}

/// Reads the entries after the header and stages every image of `m` in `dir`. When an image is
/// refused, every file staged so far and the directories made for them are removed again.
/// Image patches are decoded against what `bases` opens.
pub fn stage_images(
    input: &mut impl Read,
    m: &Manifest,
    dir: &Path,
    bases: &mut dyn ImageBases,
) -> Result<Vec<StagedFile>> {
    let made = super::create_dirs(dir)?;
    let mut written = Vec::new();
    let staged = stage_all(input, m, dir, &mut written, bases);
    if staged.is_err() {
        for p in &written {
            let _ = std::fs::remove_file(p);
        }
        super::remove_made(&made);
    }
    staged
}

fn stage_all(
    input: &mut impl Read,
    m: &Manifest,
    dir: &Path,
    written: &mut Vec<PathBuf>,
    bases: &mut dyn ImageBases,
) -> Result<Vec<StagedFile>> {
    let (available, _, _) = free_space(dir)?;
    let needed = m.total_image_size().saturating_add(STAGING_MARGIN);
    if needed > available {
        return Err(AgentError::NoSpace {
            dir: dir.to_owned(),
            needed,
            available,
        });
    }
    let mut staged: Vec<Option<StagedFile>> = vec![None; m.images.len()];
    while let Some(h) = EntryHeader::read(input, m)? {
        let mut chunks = ChunkReader::new(input);
        // A store path entry's index is into `paths`, not `images`: only an image's may pick
        // a slot (the stream checked it against `images`).
        let slot = match h.kind {
            EntryKind::Image => staged.get_mut(h.index as usize).filter(|s| s.is_none()),
            EntryKind::StorePath => None,
        };
        let Some(slot) = slot else {
            chunks.drain().map_err(|e| AgentError::Stream(e.into()))?;
            continue;
        };
        let image = &m.images[h.index as usize];
        let path = dir.join(format!("{}.img", image.name));
        written.push(path.clone());
        let result = stage_one(&mut chunks, &h.encoding, image, &path, bases)
            .map_err(|e| crate::error::truncation_or(&chunks, e));
        *slot = Some(result?);
    }
    staged
        .into_iter()
        .zip(&m.images)
        .map(|(s, i)| s.ok_or_else(|| ApplyError::Missing(i.name.clone()).into()))
        .collect()
}

fn stage_one<R: Read>(
    chunks: &mut ChunkReader<'_, R>,
    encoding: &Encoding,
    image: &ImageEntry,
    path: &Path,
    bases: &mut dyn ImageBases,
) -> Result<StagedFile> {
    let bad = |source: PayloadError| ApplyError::Payload {
        image: image.name.clone(),
        source: Box::new(source),
    };
    let file = File::create(path).map_err(AgentError::io("creating", path))?;
    let mut out = HashingWriter {
        inner: BufWriter::new(file),
        hash: Sha256::new(),
    };
    let limit = image.size.saturating_add(1);
    let copied = match encoding {
        Encoding::Raw => io::copy(&mut chunks.take(limit), &mut out),
        Encoding::Zstd => {
            let mut dec = ruzstd::decoding::StreamingDecoder::new(&mut *chunks)
                .map_err(|e| bad(PayloadError::Zstd(e)))?;
            io::copy(&mut (&mut dec).take(limit), &mut out)
        }
        Encoding::ImagePatch => {
            let mut patched = crate::apply::patch::reader(image, &mut *chunks, bases)?;
            io::copy(&mut (&mut patched).take(limit), &mut out)
        }
        Encoding::ZstdDelta { .. } | Encoding::Patch { .. } => {
            return Err(bad(PayloadError::ImageDelta).into())
        }
    }
    .map_err(|e| bad(PayloadError::Read(e)))?;
    let trailing = chunks.drain().map_err(|e| bad(PayloadError::Read(e)))?;
    let sha256: [u8; 32] = out.hash.finalize().into();
    out.inner
        .into_inner()
        .map_err(|e| AgentError::io("writing", path)(e.into_error()))?
        .sync_all()
        .map_err(AgentError::io("syncing", path))?;
    if copied != image.size || trailing != 0 || sha256 != image.sha256_bytes() {
        return Err(bad(PayloadError::ImageMismatch {
            got_sha256: sha256,
            got_size: copied.saturating_add(trailing),
            want_sha256: image.sha256.clone(),
            want_size: image.size,
        })
        .into());
    }
    Ok(StagedFile {
        name: image.name.clone(),
        path: path.to_owned(),
        sha256,
        size: image.size,
    })
}

struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
