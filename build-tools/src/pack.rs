//! Making, verifying and inspecting bundle files.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use liminix_bundle::manifest::{Generation, PathEntry, FORMAT_VERSION};
use liminix_bundle::nar::{self, RestoreOptions};
use liminix_bundle::stream::{self, ChunkReader, ChunkWriter, Encoding, EntryHeader, Header};
use liminix_bundle::{sign, Manifest, PublicKey, SecretKey};

use crate::closure::{self, count_entries, host_path, ClosureError};
use crate::images::{self, ImageInput};

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Closure(#[from] ClosureError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("serialising {path}: {source}")]
    Nar {
        path: PathBuf,
        source: nar::NarError,
    },
    #[error(transparent)]
    Stream(#[from] stream::StreamError),
    #[error("not signed by the trusted key {0}")]
    Untrusted(String),
    #[error("the signature by the trusted key {0} does not verify: the manifest or the signature was altered after signing")]
    BadSignature(String),
    #[error("entry for {path} is corrupt: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("bundle lacks the payload of {0} store path(s), e.g. {1}")]
    MissingEntries(usize, String),
    #[error(transparent)]
    Board(#[from] liminix_boards::BoardError),
    #[error("board {board} has no image {image:?} (it has: {known})")]
    ImageNotOnBoard {
        image: String,
        board: String,
        known: String,
    },
    #[error("image {image} has {size} bytes but its target takes at most {max}")]
    ImageTooLarge { image: String, size: u64, max: u64 },
    #[error("image {0} is given twice")]
    DuplicateImage(String),
    #[error("nothing to pack: give a toplevel, images, or both")]
    Nothing,
    #[error("images need the board definition of {0}")]
    NoBoardFile(String),
    #[error("bundle lacks the payload of image {0}")]
    MissingImage(String),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PackError + 'a {
    move |source| PackError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

pub struct PackOptions<'a> {
    pub store_root: &'a Path,
    /// The system closure to pack, if any.
    pub toplevel: Option<&'a str>,
    pub board: &'a str,
    pub epoch: u64,
    pub build_time: u64,
    /// zstd level for the payload (19 by default: bundles are made once and sent many times).
    pub level: i32,
    /// Flash images (`--image NAME=FILE`).
    pub images: &'a [ImageInput],
    /// The board definition that decides the images' targets (needed when there are images).
    pub board_def: Option<&'a liminix_boards::Board>,
    /// Store images uncompressed (encoding 0) instead of as zstd frames.
    pub raw_images: bool,
}

/// Builds the manifest: NAR hash, size and entry count of every path of the closure.
pub fn manifest(o: &PackOptions) -> Result<Manifest, PackError> {
    if o.toplevel.is_none() && o.images.is_empty() {
        return Err(PackError::Nothing);
    }
    let paths = match o.toplevel {
        Some(t) => closure::closure(o.store_root, t)?,
        None => Vec::new(),
    };
    let mut entries = Vec::with_capacity(paths.len());
    for p in &paths {
        let host = host_path(o.store_root, p);
        let h = nar::hash_path(&host).map_err(|source| PackError::Nar {
            path: host.clone(),
            source,
        })?;
        entries.push(PathEntry {
            path: p.to_string(),
            nar_sha256: hex::encode(h.sha256),
            nar_size: h.size,
            entries: count_entries(&host),
        });
    }
    let m = Manifest {
        format: FORMAT_VERSION,
        board: o.board.to_owned(),
        generation: Generation {
            toplevel: o.toplevel.unwrap_or("").trim_end_matches('/').to_owned(),
            build_time: o.build_time,
        },
        epoch: o.epoch,
        paths: entries,
        images: match (o.images.is_empty(), o.board_def) {
            (true, _) => Vec::new(),
            (false, Some(b)) => images::entries(b, o.images)?,
            (false, None) => return Err(PackError::NoBoardFile(o.board.to_owned())),
        },
    };
    m.validate().map_err(|e| PackError::Stream(e.into()))?;
    Ok(m)
}

/// Compresses one store path's NAR into a framed entry body.
fn compress_entry(store_root: &Path, e: &PathEntry, level: i32) -> Result<Vec<u8>, PackError> {
    let host = host_path(store_root, &e.store_path());
    let framed = ChunkWriter::new(Vec::new());
    let mut enc =
        zstd::stream::write::Encoder::new(framed, level).map_err(io_err("compressing", &host))?;
    enc.include_checksum(false)
        .map_err(io_err("compressing", &host))?;
    nar::dump(&host, &mut enc).map_err(|source| PackError::Nar {
        path: host.clone(),
        source,
    })?;
    let framed = enc.finish().map_err(io_err("compressing", &host))?;
    framed.finish().map_err(io_err("compressing", &host))
}

/// Writes a signed bundle of the closure to `out`; `progress(done, total)` after each path.
pub fn write_bundle(
    o: &PackOptions,
    key: &SecretKey,
    out: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<Manifest, PackError> {
    let m = manifest(o)?;
    let manifest_bytes = m.to_bytes();
    let header = Header {
        signatures: vec![key.sign_manifest(&manifest_bytes)],
        manifest_bytes,
        manifest: m.clone(),
    };
    let tmp = out.with_extension("partial");
    let file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
    let mut w = BufWriter::new(file);
    header.write(&mut w).map_err(io_err("writing", &tmp))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (batch_no, batch) in m.paths.chunks(threads * 4).enumerate() {
        let bodies: Vec<Result<Vec<u8>, PackError>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .chunks(4)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|e| compress_entry(o.store_root, e, o.level))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("compression thread"))
                .collect()
        });
        for (i, body) in bodies.into_iter().enumerate() {
            let index = (batch_no * threads * 4 + i) as u32;
            EntryHeader {
                kind: stream::EntryKind::StorePath,
                index,
                encoding: Encoding::Zstd,
            }
            .write(&mut w)
            .map_err(io_err("writing", &tmp))?;
            w.write_all(&body?).map_err(io_err("writing", &tmp))?;
            progress(index as usize + 1, m.paths.len());
        }
    }
    for (index, entry) in m.images.iter().enumerate() {
        let input = o
            .images
            .iter()
            .find(|i| i.name == entry.name)
            .expect("manifest images come from the inputs");
        let level = (!o.raw_images).then_some(o.level);
        images::write_entry(&mut w, index as u32, &input.file, level)?;
    }
    stream::write_end(&mut w).map_err(io_err("writing", &tmp))?;
    let file = w.into_inner().map_err(|e| PackError::Io {
        what: "writing",
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err("syncing", &tmp))?;
    std::fs::rename(&tmp, out).map_err(io_err("renaming", out))?;
    Ok(m)
}

/// Where each entry's framed body sits in a bundle file.
#[derive(Clone, Debug)]
pub struct EntryLocation {
    pub header: EntryHeader,
    /// Offset of the entry header.
    pub offset: u64,
    /// Length of header plus framed body.
    pub len: u64,
}

/// Reads the header and indexes the entries without decoding them.
pub fn index(path: &Path) -> Result<(Header, Vec<EntryLocation>), PackError> {
    let file = File::open(path).map_err(io_err("opening", path))?;
    let mut r = BufReader::new(file);
    let header = Header::read(&mut r)?;
    let mut out = Vec::new();
    loop {
        let offset = r.stream_position().map_err(io_err("reading", path))?;
        let Some(h) = EntryHeader::read(&mut r, &header.manifest)? else {
            break;
        };
        loop {
            let mut len = [0u8; 4];
            r.read_exact(&mut len)
                .map_err(|_| stream::StreamError::Truncated(stream::ENTRY_DATA))?;
            let len = u32::from_le_bytes(len);
            if len == 0 {
                break;
            }
            r.seek(SeekFrom::Current(i64::from(len)))
                .map_err(io_err("reading", path))?;
        }
        let end = r.stream_position().map_err(io_err("reading", path))?;
        out.push(EntryLocation {
            header: h,
            offset,
            len: end - offset,
        });
    }
    Ok((header, out))
}

pub struct Verified {
    pub manifest: Manifest,
    pub entries: usize,
    pub images: usize,
    pub signer: String,
}

/// `e`, unless the stream ended inside the entry: then, in the agent's words, it is truncated.
fn truncated_or<R: Read>(chunks: &ChunkReader<'_, R>, e: PackError) -> PackError {
    match chunks.truncated() {
        true => stream::StreamError::Truncated(stream::ENTRY_DATA).into(),
        false => e,
    }
}

/// Full check: trusted signature, then every entry decoded and hashed against the manifest.
pub fn verify(path: &Path, trusted: &PublicKey) -> Result<Verified, PackError> {
    let file = File::open(path).map_err(io_err("opening", path))?;
    let mut r = BufReader::new(file);
    let header = Header::read(&mut r)?;
    let checked = sign::check_signatures(
        &header.manifest_bytes,
        &header.signatures,
        std::slice::from_ref(trusted),
    );
    let sig = match checked {
        Ok(i) => &header.signatures[i],
        Err(sign::Rejection::UnknownKeys) => return Err(PackError::Untrusted(trusted.to_hex())),
        Err(sign::Rejection::Invalid { key }) => return Err(PackError::BadSignature(key)),
    };
    let m = &header.manifest;
    let mut seen = BTreeSet::new();
    let mut seen_images = BTreeSet::new();
    while let Some(h) = EntryHeader::read(&mut r, m)? {
        if h.kind == stream::EntryKind::Image {
            verify_image(&mut r, m, &h)?;
            seen_images.insert(h.index);
            continue;
        }
        let e = &m.paths[h.index as usize];
        let corrupt = |detail: String| PackError::Corrupt {
            path: e.path.clone(),
            detail,
        };
        let mut chunks = ChunkReader::new(&mut r);
        let opts = RestoreOptions {
            max_size: Some(e.nar_size),
        };
        let got = match &h.encoding {
            Encoding::Raw => nar::verify_stream(&mut chunks, &opts),
            Encoding::Zstd => {
                let mut dec = zstd::stream::read::Decoder::new(&mut chunks)
                    .map_err(|e| corrupt(e.to_string()))?
                    .single_frame();
                nar::verify_stream(&mut dec, &opts)
            }
            Encoding::ZstdDelta { base } => {
                return Err(corrupt(format!(
                    "delta entry against {base} cannot be verified standalone"
                )))
            }
        }
        .map_err(|err| truncated_or(&chunks, corrupt(err.to_string())))?;
        chunks
            .drain()
            .map_err(|err| truncated_or(&chunks, corrupt(err.to_string())))?;
        if got.sha256 != e.sha256() || got.size != e.nar_size {
            return Err(corrupt(format!(
                "NAR sha256 {} does not match the manifest's {}",
                hex::encode(got.sha256),
                e.nar_sha256
            )));
        }
        seen.insert(h.index);
    }
    if seen.len() != m.paths.len() {
        let missing: Vec<&PathEntry> = m
            .paths
            .iter()
            .enumerate()
            .filter(|(i, _)| !seen.contains(&(*i as u32)))
            .map(|(_, e)| e)
            .collect();
        return Err(PackError::MissingEntries(
            missing.len(),
            missing[0].path.clone(),
        ));
    }
    if let Some(i) = (0..m.images.len()).find(|i| !seen_images.contains(&(*i as u32))) {
        return Err(PackError::MissingImage(m.images[i].name.clone()));
    }
    Ok(Verified {
        manifest: m.clone(),
        entries: seen.len(),
        images: seen_images.len(),
        signer: sig.key.clone(),
    })
}

fn verify_image(r: &mut impl Read, m: &Manifest, h: &EntryHeader) -> Result<(), PackError> {
    let e = &m.images[h.index as usize];
    let corrupt = |detail: String| PackError::Corrupt {
        path: format!("image {}", e.name),
        detail,
    };
    let mut chunks = ChunkReader::new(r);
    let (sha, len) = images::decode_entry(&mut chunks, &h.encoding, e.size, &mut io::sink())
        .map_err(|err| corrupt(err.to_string()))?;
    if len != e.size || sha != e.sha256_bytes() {
        return Err(corrupt(format!(
            "{len} bytes with sha256 {}, the manifest says {} bytes with {}",
            hex::encode(sha),
            e.size,
            e.sha256
        )));
    }
    Ok(())
}

/// Reads a secret key file, or makes a fresh key pair (refusing to overwrite).
pub fn keygen(secret: &Path, public: &Path) -> Result<PublicKey, PackError> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = SecretKey::generate();
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(secret)
        .map_err(io_err("creating", secret))?;
    f.write_all(key.to_file_text().as_bytes())
        .map_err(io_err("writing", secret))?;
    let mut p = File::options()
        .write(true)
        .create_new(true)
        .open(public)
        .map_err(io_err("creating", public))?;
    p.write_all(key.public().to_file_text().as_bytes())
        .map_err(io_err("writing", public))?;
    Ok(key.public())
}
