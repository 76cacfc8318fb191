//! The single-copy strategies (`raw`, `ubi`): check every target before anything is written,
//! then write each image as one journalled liminix-flash transaction.

use liminix_boards::{Board, Place, Resolved, VolumeKind};
use liminix_flash::raw::check_fits;
use liminix_flash::ubi_update::{plan, UbiPlan};
use liminix_flash::{
    update_raw, update_ubi, FileImage, FileJournal, Progress, RawOptions, TxError, UbiOptions,
    VolKind,
};
use serde::Serialize;

use super::error::ApplyError;
use super::targets::Devices;
use crate::error::{AgentError, Result};
use crate::flashops::journal_dir::JournalLocation;
use crate::flashops::raw::writer_options;
use crate::flashops::FlashOpError;
use crate::root::DeviceRoot;
use crate::staging::images::StagedFile;
use crate::staging::journal::{settle, stage};

/// One image and where it goes.
pub struct Job<'a> {
    pub image: &'a StagedFile,
    pub to: Resolved<'a>,
}

/// What writing one image did.
#[derive(Clone, Debug, Serialize)]
pub struct ImageReport {
    pub image: String,
    pub target: String,
    /// `raw`, `ubi-swap` or `ubi-in-place`.
    pub method: &'static str,
    pub bytes: u64,
    pub sha256: String,
    /// Raw: erase blocks rewritten and left as they were.
    pub rewritten_blocks: u64,
    pub unchanged_blocks: u64,
    /// UBI swap: the name the previous image is kept under.
    pub old_kept_as: Option<String>,
}

/// The staged image was hashed against the manifest while it was received; the
/// writers check that what they write still hashes the same.
fn ubi_options(volume: &liminix_boards::Volume, in_place: bool, sha: [u8; 32]) -> UbiOptions {
    UbiOptions {
        expect_sha256: Some(sha),
        volume_bytes: volume.size,
        allow_in_place: in_place,
        force_in_place: false,
        kind: match volume.kind {
            VolumeKind::Dynamic => VolKind::Dynamic,
            VolumeKind::Static => VolKind::Static,
        },
    }
}

fn too_large<'a, E: std::error::Error + Send + Sync + 'static>(
    job: &'a Job,
) -> impl FnOnce(E) -> ApplyError + 'a {
    move |e| ApplyError::TooLarge {
        image: job.image.name.clone(),
        target: job.to.target.to_owned(),
        source: Box::new(e),
    }
}

/// Checks, without writing, that each target is the partition the board describes and that its
/// image fits (good blocks on NAND; room for a swap, or an unmounted volume for in place).
pub fn precheck(board: &Board, dev: &mut dyn Devices, jobs: &[Job], in_place: bool) -> Result<()> {
    for job in jobs {
        let size = job.image.size;
        match &job.to.place {
            Place::Raw { chip, partition } => {
                let (_, flash) = dev.raw(partition)?;
                let geo = flash.geometry();
                if geo.size != partition.size || u64::from(geo.erase_size) != chip.erase_size {
                    return Err(ApplyError::Geometry {
                        target: job.to.target.to_owned(),
                        size: geo.size,
                        erase_size: geo.erase_size.into(),
                        want_size: partition.size,
                        want_erase_size: chip.erase_size,
                    }
                    .into());
                }
                check_fits(flash, size).map_err(too_large(job))?;
                if let Some(used) = dev.raw_in_use(partition)? {
                    let target = job.to.target.to_owned();
                    return Err(ApplyError::InUse { target, used }.into());
                }
            }
            Place::Ubi {
                partition, volume, ..
            } => {
                let (target, ubi) = dev.ubi(partition)?;
                let leb = ubi.leb_size().map_err(too_large(job))?;
                let want = board.ubi.as_ref().map_or(leb, |u| u.leb_size);
                if leb != want {
                    return Err(ApplyError::LebSize {
                        target: job.to.target.to_owned(),
                        leb,
                        want,
                    }
                    .into());
                }
                let p = plan(
                    ubi,
                    &volume.name,
                    size,
                    &ubi_options(volume, in_place, job.image.sha256),
                )
                .map_err(too_large(job))?;
                if let UbiPlan::InPlace { current } = p {
                    if let Some(at) = dev.mount_point(&target, &current)? {
                        return Err(ApplyError::Mounted {
                            volume: format!("{target}:{}", volume.name),
                            at,
                        }
                        .into());
                    }
                }
            }
        }
    }
    Ok(())
}

fn tx_err(job: &Job) -> impl FnOnce(TxError) -> ApplyError {
    let (image, target) = (job.image.name.clone(), job.to.target.to_owned());
    move |source| ApplyError::Tx {
        image,
        target,
        source,
    }
}

/// Writes every image, in order, each as its own transaction.
pub fn write_all(
    root: &DeviceRoot,
    dev: &mut dyn Devices,
    jobs: &[Job],
    loc: &JournalLocation,
    in_place: bool,
    progress: &mut dyn Progress,
) -> Result<Vec<ImageReport>> {
    let mut reports = Vec::with_capacity(jobs.len());
    for job in jobs {
        let what = format!("{} to {}", job.image.name, job.to.target);
        progress.note(&format!("writing {what}"));
        crate::steplog::log(root, &format!("apply: erase-write-verify {what}"));
        let r = match &job.to.place {
            Place::Raw { partition, .. } => write_raw(dev, job, partition, loc, progress),
            Place::Ubi {
                partition, volume, ..
            } => write_ubi(dev, job, partition, volume, loc, in_place, progress),
        };
        let r = r.inspect_err(|e| crate::steplog::log(root, &format!("apply: {what}: {e}")))?;
        crate::steplog::log(root, &format!("apply: {what} verified ({})", r.method));
        reports.push(r);
    }
    Ok(reports)
}

fn journal(loc: &JournalLocation) -> Result<FileJournal> {
    Ok(FileJournal::open(&loc.dir).map_err(FlashOpError::from)?)
}

fn write_raw(
    dev: &mut dyn Devices,
    job: &Job,
    partition: &liminix_boards::Partition,
    loc: &JournalLocation,
    progress: &mut dyn Progress,
) -> Result<ImageReport> {
    let (key, _) = dev.raw(partition)?;
    dev.recover(loc, &key, progress)?;
    // Recovery after a crash re-runs the writer from this copy.
    let staged = stage(loc, &key, &job.image.path)?;
    let src = FileImage::new(&staged.path).map_err(AgentError::io("opening", &staged.path))?;
    let mut j = journal(loc)?;
    let (_, flash) = dev.raw(partition)?;
    let opts = RawOptions {
        expect_sha256: Some(job.image.sha256),
        ..writer_options()
    };
    let result = update_raw(flash, &mut j, &key, &src, &opts, progress);
    settle(&mut j, loc, &key)?;
    let r = result.map_err(tx_err(job))?;
    Ok(ImageReport {
        image: job.image.name.clone(),
        target: key,
        method: "raw",
        bytes: r.image_len,
        sha256: hex::encode(r.sha256),
        rewritten_blocks: r.rewritten_blocks,
        unchanged_blocks: r.unchanged_blocks,
        old_kept_as: None,
    })
}

fn write_ubi(
    dev: &mut dyn Devices,
    job: &Job,
    partition: &liminix_boards::Partition,
    volume: &liminix_boards::Volume,
    loc: &JournalLocation,
    in_place: bool,
    progress: &mut dyn Progress,
) -> Result<ImageReport> {
    let (target, _) = dev.ubi(partition)?;
    let key = format!("{target}:{}", volume.name);
    dev.recover(loc, &key, progress)?;
    let opts = ubi_options(volume, in_place, job.image.sha256);
    let (_, ubi) = dev.ubi(partition)?;
    let planned = plan(ubi, &volume.name, job.image.size, &opts).map_err(too_large(job))?;
    // Only an in-place update needs the image again after a crash; a swap rolls back.
    let is_in_place = matches!(planned, UbiPlan::InPlace { .. });
    let path = match is_in_place {
        true => stage(loc, &key, &job.image.path)?.path,
        false => job.image.path.clone(),
    };
    let src = FileImage::new(&path).map_err(AgentError::io("opening", &path))?;
    let mut j = journal(loc)?;
    let (_, ubi) = dev.ubi(partition)?;
    let result = update_ubi(ubi, &mut j, &target, &volume.name, &src, &opts, progress);
    settle(&mut j, loc, &key)?;
    let r = result.map_err(tx_err(job))?;
    Ok(ImageReport {
        image: job.image.name.clone(),
        target: key,
        method: if is_in_place {
            "ubi-in-place"
        } else {
            "ubi-swap"
        },
        bytes: job.image.size,
        sha256: hex::encode(r.sha256),
        rewritten_blocks: 0,
        unchanged_blocks: 0,
        old_kept_as: r.old_kept_as,
    })
}
