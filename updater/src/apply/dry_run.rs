//! `apply --dry-run`: what `apply` would do with a bundle, from its manifest alone. The same
//! checks come first (signature, board, images, epoch, each target's geometry and room), then
//! each raw partition or UBI volume is read and hashed to tell whether it already holds the
//! image. Nothing is staged, journalled or written, and no payload byte is read.
//!
//! A raw target that the running system uses is not an error here: the report says so, because
//! on a NOR board that is what `levitate` (or `update.sh`'s one-command path) is for.

use std::io::{BufReader, Read};

use liminix_boards::{Board, Place};
use liminix_bundle::stream::Header;
use liminix_flash::Flash;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::ApplyError;
use super::image::{precheck, Job};
use super::targets::Devices;
use super::{checks, StagedFile};
use crate::error::{AgentError, Result};
use crate::root::DeviceRoot;

/// What `apply` would do.
#[derive(Clone, Debug, Serialize)]
pub struct DryRunReport {
    pub dry_run: bool,
    pub board: String,
    pub strategy: &'static str,
    pub epoch: u64,
    /// The bundle's images and what each target holds now (raw and UBI boards; on A/B boards
    /// the images, which go to the slot that is not running).
    pub images: Vec<PlannedImage>,
    /// Whether `apply` would write anything: an image differs from its target, or the board is
    /// an A/B board (which always installs into the other slot).
    pub would_change: bool,
}

/// One image of the bundle and its target.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedImage {
    pub image: String,
    pub target: String,
    pub bytes: u64,
    pub sha256: String,
    /// `same` (the target already holds the image), `differs`, or `other-slot` (A/B).
    pub current: &'static str,
    /// The running system's use of the target, when it uses it: `apply` would refuse until the
    /// router levitates.
    pub in_use: Option<String>,
}

/// Reads the bundle's header from `input` and says what `apply` would do on `devices`.
pub fn dry_run(
    root: &DeviceRoot,
    input: &mut dyn Read,
    devices: &mut dyn Devices,
) -> Result<DryRunReport> {
    let mut input = BufReader::new(input);
    let header = Header::read(&mut input)?;
    let board = checks::check_header(root, &header)?;
    let m = &header.manifest;
    let planned = super::planned(m);
    super::patch::check_bases(root, &board, m, devices)?;
    let images = if board.strategy.is_ab() {
        planned.iter().map(other_slot).collect()
    } else {
        let mut images = Vec::with_capacity(planned.len());
        for s in &planned {
            let to = board.resolve(&s.name, None).map_err(ApplyError::from)?;
            images.push(compare(&board, devices, &Job { image: s, to })?);
        }
        images
    };
    Ok(DryRunReport {
        dry_run: true,
        board: board.name.clone(),
        strategy: board.strategy.as_str(),
        epoch: m.epoch,
        would_change: images.iter().any(|i| i.current != "same"),
        images,
    })
}

fn other_slot(s: &StagedFile) -> PlannedImage {
    PlannedImage {
        image: s.name.clone(),
        target: "the slot that is not running".into(),
        bytes: s.size,
        sha256: hex::encode(s.sha256),
        current: "other-slot",
        in_use: None,
    }
}

/// Runs `apply`'s own checks on one target (all but the in-use refusal, which is reported),
/// then hashes what the target holds.
fn compare(board: &Board, devices: &mut dyn Devices, job: &Job) -> Result<PlannedImage> {
    let in_use = match precheck(board, devices, std::slice::from_ref(job), false) {
        Ok(()) => None,
        Err(AgentError::Apply(e @ ApplyError::InUse { .. })) => Some(e.to_string()),
        Err(e) => return Err(e),
    };
    let size = job.image.size;
    let (target, held) = match &job.to.place {
        Place::Raw { partition, .. } => {
            let (key, flash) = devices.raw(partition)?;
            let held = raw_hash(flash, size).map_err(device_err(&key))?;
            (key, held)
        }
        Place::Ubi {
            partition, volume, ..
        } => {
            let (ubi_target, ubi) = devices.ubi(partition)?;
            let key = format!("{ubi_target}:{}", volume.name);
            let held = match ubi.volume_by_name(&volume.name).map_err(device_err(&key))? {
                Some(v) if v.reserved_bytes >= size => {
                    let mut r = ubi.open_read(v.id).map_err(device_err(&key))?;
                    Some(prefix_hash(&mut r, size).map_err(device_err(&key))?)
                }
                _ => None,
            };
            (key, held)
        }
    };
    Ok(PlannedImage {
        image: job.image.name.clone(),
        target,
        bytes: size,
        sha256: hex::encode(job.image.sha256),
        current: if held == Some(job.image.sha256) {
            "same"
        } else {
            "differs"
        },
        in_use,
    })
}

fn device_err<E: std::error::Error + Send + Sync + 'static>(
    target: &str,
) -> impl FnOnce(E) -> ApplyError + '_ {
    move |e| ApplyError::Device {
        target: target.to_owned(),
        source: Box::new(e),
    }
}

/// The sha256 of the first `size` bytes the raw writer would have put on `flash`: bad blocks
/// (NAND) are skipped, as the writer skips them. `None` when the good blocks hold less.
fn raw_hash(
    flash: &mut dyn Flash,
    size: u64,
) -> std::result::Result<Option<[u8; 32]>, liminix_flash::FlashError> {
    let geo = flash.geometry();
    let eb = u64::from(geo.erase_size);
    let mut buf = vec![0u8; geo.erase_size as usize];
    let mut hash = Sha256::new();
    let mut left = size;
    let mut block = 0u64;
    while left > 0 {
        if block >= geo.blocks() {
            return Ok(None);
        }
        let off = block * eb;
        block += 1;
        if geo.is_nand && flash.is_bad(off)? {
            continue;
        }
        let n = left.min(eb) as usize;
        flash.read(off, &mut buf[..n])?;
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(Some(hash.finalize().into()))
}

fn prefix_hash(r: &mut dyn Read, size: u64) -> std::io::Result<[u8; 32]> {
    let mut sink = super::patch::HashSink::default();
    let copied = std::io::copy(&mut r.take(size), &mut sink)?;
    let mut hash = sink.0;
    if copied != size {
        // A volume that holds fewer bytes than the image cannot hold the image.
        hash.update(b"short");
    }
    Ok(hash.finalize().into())
}
