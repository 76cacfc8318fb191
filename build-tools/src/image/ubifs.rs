//! UBIFS root filesystem images, made by `mkfs.ubifs` (mtd-utils) as Liminix does: UBIFS is
//! a log-structured filesystem with an index B+tree, LPT, orphan area and journal whose
//! on-flash layout is tied to the LEB size; a native writer would be a filesystem
//! implementation of its own, and the kernel is the only other reader. The build host runs it
//! with `-x favor_lzo -y --squash-uids`.
//!
//! mkfs.ubifs (2.1.5) has no switch for reproducible output: it copies every inode's atime,
//! ctime and mtime from the source tree (the atime changes as the tool itself reads the files)
//! and writes a random UUID into the superblock. So its output is made reproducible
//! afterwards, in [`normalize`]: every inode node's three times become the epoch, the UUID is
//! derived from the image's own bytes, and each changed node's CRC is recomputed. Nothing else
//! refers to those bytes (the index points at nodes by LEB, offset and length, which stay),
//! so the kernel reads the result as the tool wrote it. What stays tied to the source is the
//! inode numbering, which follows the order the source filesystem lists directories in: the
//! same tree on the same filesystem gives the same bytes. docs/formats/ubi.md.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use sha2::{Digest, Sha256};

use crate::output;
use crate::pack::PackError;

/// The tool this module runs.
pub const TOOL: &str = "mkfs.ubifs";

/// The geometry mkfs.ubifs needs: the UBI device's min I/O unit, LEB size, and the most LEBs
/// the filesystem may grow to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UbifsSpec {
    pub min_io: u64,
    pub leb_size: u64,
    pub max_leb_count: u64,
    /// Timestamps in the image (SOURCE_DATE_EPOCH).
    pub epoch: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UbifsError {
    #[error("ubifs image: {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("ubifs image: cannot run {TOOL} (install mtd-utils): {0}")]
    Spawn(std::io::Error),
    #[error(
        "ubifs image: the tree {} needs {needed} LEBs of {leb_size} bytes, more than the \
         {max_leb_count} the filesystem may have ({max_bytes} bytes)",
        src.display()
    )]
    TooBig {
        src: PathBuf,
        needed: u64,
        max_leb_count: u64,
        leb_size: u64,
        max_bytes: u64,
    },
    #[error("ubifs image: {TOOL} -r {} failed ({status}): {stderr}", src.display())]
    Failed {
        src: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
    #[error("ubifs image: reading what {TOOL} wrote to {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ubifs image: {TOOL}'s output is not the UBIFS it should be: {0}")]
    Malformed(String),
    #[error("ubifs image: {0}")]
    Output(#[from] PackError),
}

/// Writes a UBIFS image of the tree `src` to `out`, replacing it.
pub fn write(src: &Path, spec: &UbifsSpec, out: &Path) -> Result<(), UbifsError> {
    if !src.is_dir() {
        return Err(UbifsError::NotADirectory(src.to_owned()));
    }
    // The tool writes its own file; it goes beside `out` and is removed once read.
    let raw = output::Staged::beside(out, 0o600)?;
    run(src, spec, &raw.path)?;
    let mut img = std::fs::read(&raw.path).map_err(|source| UbifsError::Read {
        path: raw.path.clone(),
        source,
    })?;
    drop(raw);
    normalize(&mut img, spec)?;
    output::write_file(out, 0o644, |file, tmp| {
        file.write_all(&img).map_err(|source| PackError::Io {
            what: "writing",
            path: tmp.to_owned(),
            source,
        })
    })?;
    Ok(())
}

/// The command line Liminix uses (`-y`: no questions; `--squash-uids`: root owns every file,
/// as the device expects from a build run unprivileged).
fn command(src: &Path, spec: &UbifsSpec, out: &Path) -> Command {
    let mut cmd = Command::new(TOOL);
    cmd.args(["-x", "favor_lzo", "-y", "--squash-uids"])
        .args(["-m", &spec.min_io.to_string()])
        .args(["-e", &spec.leb_size.to_string()])
        .args(["-c", &spec.max_leb_count.to_string()])
        .arg("-r")
        .arg(src)
        .arg("-o")
        .arg(out);
    cmd
}

fn run(src: &Path, spec: &UbifsSpec, out: &Path) -> Result<(), UbifsError> {
    let done = command(src, spec, out)
        .output()
        .map_err(UbifsError::Spawn)?;
    if done.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&done.stderr).trim().to_owned();
    Err(match needed_lebs(&stderr) {
        Some(needed) => UbifsError::TooBig {
            src: src.to_owned(),
            needed,
            max_leb_count: spec.max_leb_count,
            leb_size: spec.leb_size,
            max_bytes: spec.max_leb_count.saturating_mul(spec.leb_size),
        },
        None => UbifsError::Failed {
            src: src.to_owned(),
            status: done.status,
            stderr,
        },
    })
}

/// The LEB count mkfs.ubifs asks for when the tree does not fit ("max_leb_cnt too low (N
/// needed)").
fn needed_lebs(stderr: &str) -> Option<u64> {
    let rest = stderr.split("max_leb_cnt too low (").nth(1)?;
    rest.split(' ').next()?.parse().ok()
}

const MAGIC: u32 = 0x0610_1831;
/// The common header every node starts with.
const CH_LEN: usize = 24;
const INO_NODE: u8 = 0;
const PAD_NODE: u8 = 5;
const SB_NODE: u8 = 6;
/// The bytes UBIFS fills gaps too small for a padding node with.
const PAD_BYTE: u8 = 0xce;
/// atime, ctime, mtime seconds (u64 each) then their nanoseconds (u32 each).
const INO_TIMES: std::ops::Range<usize> = 56..92;
const SB_UUID: std::ops::Range<usize> = 108..124;
/// Superblock LEB, two master LEBs.
const FIXED_LEBS: u64 = 3;

/// Makes the image independent of the source tree's times and of the tool's random UUID.
pub fn normalize(img: &mut [u8], spec: &UbifsSpec) -> Result<(), UbifsError> {
    let leb = usize::try_from(spec.leb_size)
        .ok()
        .filter(|&l| l >= 4096)
        .ok_or_else(|| malformed(format!("LEB size {} is not usable", spec.leb_size)))?;
    let sb_len = node_at(img, 0, SB_NODE)?;
    if sb_len < SB_UUID.end {
        return Err(malformed(format!(
            "the superblock node is only {sb_len} bytes"
        )));
    }
    let layout = |at: usize| u64::from(le32(&img[..sb_len], at));
    let main = FIXED_LEBS + layout(56) + layout(60) + layout(64);
    let leb_count = layout(40);
    for lnum in main..leb_count {
        let start = usize::try_from(lnum)
            .ok()
            .and_then(|l| l.checked_mul(leb))
            .filter(|&s| s < img.len());
        let Some(start) = start else { break };
        let end = img.len().min(start.saturating_add(leb));
        set_inode_times(&mut img[start..end], spec.epoch)
            .map_err(|why| malformed(format!("LEB {lnum}: {why}")))?;
    }
    set_uuid(img, sb_len);
    Ok(())
}

/// The length of the node of `kind` at `offs`, after checking its header.
fn node_at(img: &[u8], offs: usize, kind: u8) -> Result<usize, UbifsError> {
    let hdr = img
        .get(offs..offs + CH_LEN)
        .ok_or_else(|| malformed(format!("no node at {offs}")))?;
    let len = le32(hdr, 16) as usize;
    if le32(hdr, 0) != MAGIC || hdr[20] != kind || img.len() - offs < len || len < CH_LEN {
        return Err(malformed(format!("no node of type {kind} at {offs}")));
    }
    Ok(len)
}

/// Walks the nodes of one main-area LEB, setting the times of each inode node.
fn set_inode_times(leb: &mut [u8], epoch: u64) -> Result<(), String> {
    let mut offs = 0;
    while offs < leb.len() {
        match leb[offs] {
            PAD_BYTE => offs += 1,
            0xff if leb[offs..].iter().all(|&b| b == 0xff) => break,
            _ => offs = next_node(leb, offs, epoch)?,
        }
    }
    Ok(())
}

/// Handles the node at `offs` and returns where the next one may start.
fn next_node(leb: &mut [u8], offs: usize, epoch: u64) -> Result<usize, String> {
    let node = leb
        .get_mut(offs..)
        .filter(|n| n.len() >= CH_LEN && le32(n, 0) == MAGIC)
        .ok_or_else(|| format!("no node header at offset {offs}"))?;
    let len = le32(node, 16) as usize;
    if len < CH_LEN || len > node.len() {
        return Err(format!("node at offset {offs} claims {len} bytes"));
    }
    let node = &mut node[..len];
    match node[20] {
        INO_NODE if len >= INO_TIMES.end => {
            let mut times = [0u8; INO_TIMES.end - INO_TIMES.start];
            for slot in 0..3 {
                times[slot * 8..slot * 8 + 8].copy_from_slice(&epoch.to_le_bytes());
            }
            node[INO_TIMES].copy_from_slice(&times);
            set_crc(node);
            Ok(offs + len.next_multiple_of(8))
        }
        // The padding node says how many bytes after it are unused.
        PAD_NODE if len >= CH_LEN + 4 => Ok(offs + len + le32(node, CH_LEN) as usize),
        _ => Ok(offs + len.next_multiple_of(8)),
    }
}

/// A UUID from the image's bytes (with the UUID and the superblock CRC zeroed), marked as RFC 9562 version 8
/// ("custom"), so that equal trees give equal images.
fn set_uuid(img: &mut [u8], sb_len: usize) {
    img[SB_UUID].fill(0);
    // The tool's CRC covers its random UUID: it must not feed the digest either.
    img[4..8].fill(0);
    let digest = Sha256::digest(&*img);
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x80;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    img[SB_UUID].copy_from_slice(&uuid);
    set_crc(&mut img[..sb_len]);
}

/// UBIFS's node CRC: CRC-32 from byte 8 to the end, seeded with all ones and not inverted
/// at the end (the kernel's `crc32(UBIFS_CRC32_INIT, ...)`).
fn set_crc(node: &mut [u8]) {
    let crc = !crc32fast::hash(&node[8..]);
    node[4..8].copy_from_slice(&crc.to_le_bytes());
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn malformed(why: String) -> UbifsError {
    UbifsError::Malformed(why)
}
