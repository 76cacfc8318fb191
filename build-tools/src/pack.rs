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
use crate::output::{self, Staged};

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
    #[error("{0} names no file to write")]
    OutputName(PathBuf),
    #[error("refusing to write {output}: it is the input {input}")]
    OutputIsInput { output: PathBuf, input: PathBuf },
    #[error("refusing to write {output}: the input {input} is inside it")]
    OutputHoldsInput { output: PathBuf, input: PathBuf },
    #[error("refusing to overwrite {0}: it is a secret key")]
    OutputIsKey(PathBuf),
    #[error("refusing to replace {dir}: it holds {entry:?}, which this command does not make")]
    ForeignDir { dir: PathBuf, entry: String },
    #[error("{0} exists already: keys are never overwritten")]
    Exists(PathBuf),
    #[error("the secret and the public key must be two files, not both {0}")]
    SameKeyFile(PathBuf),
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
    output::write_file(out, 0o666, |file, tmp| {
        write_entries(o, &header, BufWriter::new(file), tmp, progress)
    })?;
    Ok(m)
}

/// The header and every entry of the bundle, in manifest order.
fn write_entries(
    o: &PackOptions,
    header: &Header,
    mut w: BufWriter<&mut File>,
    tmp: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<(), PackError> {
    let m = &header.manifest;
    header.write(&mut w).map_err(io_err("writing", tmp))?;
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
            .map_err(io_err("writing", tmp))?;
            w.write_all(&body?).map_err(io_err("writing", tmp))?;
            progress(index as usize + 1, m.paths.len());
        }
    }
    for (index, entry) in m.images.iter().enumerate() {
        let input = o
            .images
            .iter()
            .find(|i| i.name == entry.name)
            .expect("manifest images come from the inputs");
        match &input.base {
            Some(base) => {
                images::write_patch_entry(&mut w, index as u32, &input.file, base, o.level)?
            }
            None => {
                let level = (!o.raw_images).then_some(o.level);
                images::write_entry(&mut w, index as u32, &input.file, level)?;
            }
        }
    }
    stream::write_end(&mut w).map_err(io_err("writing", tmp))?;
    w.into_inner().map_err(|e| PackError::Io {
        what: "writing",
        path: tmp.to_owned(),
        source: e.into_error(),
    })?;
    Ok(())
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
        let got = verify_path_entry(&mut chunks, &h.encoding, e)
            .map_err(|err| truncated_or(&chunks, corrupt(err)))?;
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

/// Decodes one store path entry: exactly one NAR of at most the manifest's size, and nothing
/// after it (the agent refuses trailing bytes, so `verify` does too).
fn verify_path_entry<R: Read>(
    chunks: &mut ChunkReader<'_, R>,
    encoding: &Encoding,
    e: &PathEntry,
) -> Result<nar::NarHash, String> {
    let opts = RestoreOptions {
        max_size: Some(e.nar_size),
    };
    let trailing = || "trailing data after the NAR".to_owned();
    let got = match encoding {
        Encoding::Raw => nar::verify_stream(chunks, &opts).map_err(|err| err.to_string())?,
        Encoding::Zstd => {
            let mut dec = zstd::stream::read::Decoder::new(&mut *chunks)
                .map_err(|err| err.to_string())?
                .single_frame();
            let got = nar::verify_stream(&mut dec, &opts).map_err(|err| err.to_string())?;
            let mut probe = [0u8; 1];
            if dec.read(&mut probe).map_err(|err| err.to_string())? > 0 {
                return Err(trailing());
            }
            if !dec.finish().buffer().is_empty() {
                return Err(trailing());
            }
            got
        }
        Encoding::ZstdDelta { base } | Encoding::Patch { base } => {
            return Err(format!(
                "delta entry against {base} cannot be verified standalone"
            ))
        }
        Encoding::ImagePatch => return Err("an image patch in a store path entry".into()),
    };
    if chunks.drain().map_err(|err| err.to_string())? > 0 {
        return Err(trailing());
    }
    Ok(got)
}

fn verify_image(r: &mut impl Read, m: &Manifest, h: &EntryHeader) -> Result<(), PackError> {
    let e = &m.images[h.index as usize];
    let corrupt = |detail: String| PackError::Corrupt {
        path: format!("image {}", e.name),
        detail,
    };
    let mut chunks = ChunkReader::new(r);
    if h.encoding == Encoding::ImagePatch {
        // The base is on the device: here only what the patch claims can be checked.
        return images::check_patch_entry(&mut chunks, e).map_err(|err| corrupt(err.to_string()));
    }
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

/// Makes a fresh key pair: both files or, on any failure, neither. The secret key is created
/// with mode 0600; an existing file at either name is an error and stays as it was.
pub fn keygen(secret: &Path, public: &Path) -> Result<PublicKey, PackError> {
    if secret == public {
        return Err(PackError::SameKeyFile(secret.to_owned()));
    }
    for p in [secret, public] {
        if std::fs::symlink_metadata(p).is_ok() {
            return Err(PackError::Exists(p.to_owned()));
        }
    }
    let key = SecretKey::generate();
    let mut s = Staged::beside(secret, 0o600)?;
    let mut p = Staged::beside(public, 0o644)?;
    s.file
        .write_all(key.to_file_text().as_bytes())
        .map_err(io_err("writing", &s.path))?;
    p.file
        .write_all(key.public().to_file_text().as_bytes())
        .map_err(io_err("writing", &p.path))?;
    s.finish(secret, false)?;
    if let Err(e) = p.finish(public, false) {
        // The secret half was made by this call a moment ago: without its public half it is
        // of no use, and a second keygen would refuse to replace it.
        let _ = std::fs::remove_file(secret);
        return Err(e);
    }
    Ok(key.public())
}
