//! `flashcp`: the journalled, incremental raw partition writer on a real
//! `/dev/mtdN`.
//!
//! Order of work: resolve the device, take the journal lock, recover pending
//! transactions, refuse an image larger than the partition's good blocks,
//! stage the image, then [`liminix_flash::update_raw`] (compare every erase
//! block, erase and program only those that differ, skip bad blocks on NAND,
//! read each programmed block back and compare it; the hash reported is that
//! of the data so verified, without a second whole-image pass; sync the device
//! before the journal record is cleared). `--erase-all` then erases every good
//! block after the image that is not blank already, synced before it is reported.

use std::path::{Path, PathBuf};

use liminix_flash::flash::good_blocks;
use liminix_flash::in_use::partition_in_use;
use liminix_flash::journal::JournalStore;
use liminix_flash::raw::check_fits;
use liminix_flash::{
    update_raw, FileImage, FileJournal, Flash, ImageSource, MtdFlash, Progress, RawOptions,
    RawReport,
};
use serde::Serialize;

use super::error::FlashOpError;
use super::journal_dir::JournalLocation;
use super::recovery::{recover_all, RecoveryLine};
use crate::root::DeviceRoot;
use crate::staging::journal::{settle, stage, StageKind};

/// What to write where.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Image file.
    pub image: PathBuf,
    /// `/dev/mtdN`, `mtdN` or `mtd:NAME`.
    pub device: String,
    /// Also erase every block after the image (flashcp `-A`).
    pub erase_all: bool,
    /// `--journal DIR`.
    pub journal: Option<PathBuf>,
}

/// What a raw write did.
#[derive(Debug, Clone, Serialize)]
pub struct RawSummary {
    /// The device node written.
    pub device: PathBuf,
    /// Journal key of the transaction.
    pub target: String,
    /// The writer's report, its fields inline in JSON.
    #[serde(flatten)]
    pub write: RawReport,
    /// Blocks after the image erased by `--erase-all`.
    pub erased_after_image: u64,
    /// How the image was staged for recovery.
    pub staged: StageKind,
    pub journal: JournalLocation,
    /// Earlier transactions recovered first.
    pub recovered: Vec<RecoveryLine>,
}

/// The journal key of an MTD device: `mtd:NAME` when the name is unique (it
/// survives renumbering), else `/dev/mtdN`.
pub fn target_key(root: &Path, device: &Path) -> String {
    let index = device
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("mtd"))
        .and_then(|n| n.parse::<u32>().ok());
    let all = liminix_mtd::sysfs::list(root).unwrap_or_default();
    let me = all.iter().find(|e| Some(e.index) == index);
    match me {
        Some(e) if all.iter().filter(|o| o.name == e.name).count() == 1 => {
            format!("mtd:{}", e.name)
        }
        _ => format!("/dev/mtd{}", index.unwrap_or(u32::MAX)),
    }
}

/// Run recovery and settle the record of `key`: a torn record is superseded
/// by the new write (it carries the whole image), an erroring one stops us.
pub(crate) fn recover_then_claim(
    root: &DeviceRoot,
    loc: &JournalLocation,
    key: &str,
    progress: &mut dyn Progress,
) -> Result<Vec<RecoveryLine>, FlashOpError> {
    let lines = recover_all(root, loc, progress)?;
    for l in lines.iter().filter(|l| l.key == key && !l.settled()) {
        if l.outcome != "torn" {
            return Err(FlashOpError::Unrecovered {
                key: key.to_string(),
                reason: l.detail.clone().unwrap_or_default(),
            });
        }
        progress.note(&format!("superseding torn transaction on {key}"));
        FileJournal::open(&loc.dir)?.clear(key)?;
    }
    Ok(lines)
}

/// Write the image to the raw partition (see the module docs).
pub fn flashcp(
    root: &DeviceRoot,
    req: &RawRequest,
    progress: &mut dyn Progress,
) -> Result<RawSummary, FlashOpError> {
    let mtd_err = |source| FlashOpError::Mtd {
        spec: req.device.clone(),
        source,
    };
    let device = liminix_mtd::sysfs::resolve_device(root.dir(), &req.device).map_err(mtd_err)?;
    refuse_if_in_use(root, &device, &req.device)?;
    let image = FileImage::new(&req.image).map_err(|source| FlashOpError::Image {
        path: req.image.clone(),
        source,
    })?;
    let target = target_key(root.dir(), &device);
    let loc = JournalLocation::locate(root, req.journal.as_deref());
    let made = crate::staging::missing_dirs(&loc.staging());
    let _lock = loc.lock()?;
    let prepared = recover_then_claim(root, &loc, &target, progress).and_then(|recovered| {
        let mut flash = MtdFlash::open(&device, true).map_err(mtd_err)?;
        check_fits(&mut flash, image.len()).map_err(|e| FlashOpError::Tx(e.into()))?;
        let staged = stage(&loc, &target, &req.image)?;
        Ok((recovered, flash, staged))
    });
    // A refusal before the first write leaves no journal directory this run made.
    let (recovered, mut flash, staged) = prepared.inspect_err(|_| {
        crate::staging::journal::remove_made(&loc, &made);
    })?;
    let mut journal = FileJournal::open(&loc.dir)?;
    let src = FileImage::new(&staged.path).map_err(|source| FlashOpError::Image {
        path: staged.path.clone(),
        source,
    })?;
    crate::steplog::log(root, &format!("flashcp: erase-write-verify {target}"));
    let result = update_raw(
        &mut flash,
        &mut journal,
        &target,
        &src,
        &writer_options(),
        progress,
    );
    // Keep the staged image only while a record may still need it.
    settle(&mut journal, &loc, &target)?;
    let report = result?;
    crate::steplog::log(
        root,
        &format!(
            "flashcp: {target} verified ({} block(s) rewritten)",
            report.rewritten_blocks
        ),
    );
    let erased_after_image = match req.erase_all {
        true => erase_after(&mut flash, report.image_len)?,
        false => 0,
    };
    Ok(summary(
        device,
        target,
        report,
        erased_after_image,
        staged.kind,
        loc,
        recovered,
    ))
}

/// Refuses a partition the running system reads ([`liminix_flash::in_use`]).
pub(crate) fn refuse_if_in_use(
    root: &DeviceRoot,
    device: &Path,
    spec: &str,
) -> Result<(), FlashOpError> {
    let index = device
        .file_name()
        .and_then(|n| n.to_str()?.strip_prefix("mtd")?.parse().ok());
    let Some(index) = index else { return Ok(()) };
    match partition_in_use(root.dir(), index)? {
        Some(used) => Err(FlashOpError::InUse {
            device: spec.to_string(),
            used,
        }),
        None => Ok(()),
    }
}

/// Every block is compared in full or read back right after programming, so
/// the writer's second whole-image pass would only repeat reads.
pub(crate) fn writer_options() -> RawOptions {
    RawOptions {
        final_read_back: false,
        ..RawOptions::default()
    }
}

fn summary(
    device: PathBuf,
    target: String,
    r: RawReport,
    erased_after_image: u64,
    staged: StageKind,
    journal: JournalLocation,
    recovered: Vec<RecoveryLine>,
) -> RawSummary {
    RawSummary {
        device,
        target,
        write: r,
        erased_after_image,
        staged,
        journal,
        recovered,
    }
}

/// Erase the good blocks after the image's last one unless already blank, and
/// sync the flash before the erases are reported.
fn erase_after(flash: &mut dyn Flash, image_len: u64) -> Result<u64, FlashOpError> {
    let tx =
        |e: liminix_flash::FlashError| FlashOpError::Tx(liminix_flash::RawError::from(e).into());
    let eb = u64::from(flash.geometry().erase_size);
    let used = image_len.div_ceil(eb) as usize;
    let mut buf = vec![0u8; eb as usize];
    let mut erased = 0;
    for off in good_blocks(flash).map_err(tx)?.into_iter().skip(used) {
        let blank = match flash.read(off, &mut buf) {
            Ok(()) => buf.iter().all(|&b| b == 0xFF),
            Err(liminix_flash::FlashError::Ecc { .. }) => false,
            Err(e) => return Err(tx(e)),
        };
        if !blank {
            flash.erase_block(off).map_err(tx)?;
            erased += 1;
        }
    }
    flash.sync().map_err(tx)?;
    Ok(erased)
}
