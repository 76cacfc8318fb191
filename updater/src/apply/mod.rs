//! `apply`: install the flash images of a signed bundle on an image board.
//!
//! All checks come before the first flash write: a trusted signature over the manifest, the
//! board (`/etc/liminix/board` must name the bundle's board and its board definition must load), every
//! image known to the board definition and packed for the same target, the security epoch
//! ([`checks`]), each target opened and matched against the board definition, and each image's size
//! against its target (good blocks on NAND, room for a UBI swap) ([`image::precheck`]). Then the
//! images are streamed into staging files, each verified against the manifest's sha256 and
//! size ([`crate::staging::images`]). Only then does the board's strategy write: `raw` and `ubi` boards one
//! journalled liminix-flash transaction per image ([`image`]), A/B boards the slot that is not
//! running ([`ab`]). See docs/apply.md.

pub mod ab;
pub mod bases;
pub mod checks;
pub mod dry_run;
mod error;
pub mod image;
pub mod patch;
pub mod slot_bases;
pub mod targets;

use std::io::{BufReader, Read};
use std::path::PathBuf;

use liminix_boards::Strategy;
use liminix_bundle::stream::Header;
use liminix_flash::Progress;
use serde::Serialize;

pub use crate::staging::images::StagedFile;
pub use dry_run::{dry_run, DryRunReport};
pub use error::ApplyError;
pub use image::ImageReport;
pub use targets::{Devices, RealDevices};

use crate::error::Result;
use crate::flashops::journal_dir::JournalLocation;
use crate::root::DeviceRoot;

#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Where images are staged (default: [`DeviceRoot::image_staging`]).
    pub staging: Option<PathBuf>,
    /// Journal directory (default: [`DeviceRoot::journal`]).
    pub journal: Option<PathBuf>,
    /// Allow in-place UBI updates when a swap does not fit (never of a mounted volume).
    pub in_place: bool,
    /// Reboot when done.
    pub reboot: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApplyReport {
    pub board: String,
    pub strategy: &'static str,
    pub epoch: u64,
    /// Raw and UBI boards: what each image's transaction did.
    pub images: Vec<ImageReport>,
    /// A/B boards: the slots and what the install did.
    pub ab: Option<crate::ab::InstallSummary>,
}

/// Applies the bundle read from `input` to the real devices below `root`.
pub fn apply(
    root: &DeviceRoot,
    input: &mut dyn Read,
    opts: &ApplyOptions,
    progress: &mut dyn Progress,
) -> Result<ApplyReport> {
    let mut devices = RealDevices::new(root);
    apply_with(root, input, opts, &mut devices, progress)
}

/// [`apply`] with the devices given (the simulators in tests).
pub fn apply_with(
    root: &DeviceRoot,
    input: &mut dyn Read,
    opts: &ApplyOptions,
    devices: &mut dyn Devices,
    progress: &mut dyn Progress,
) -> Result<ApplyReport> {
    let mut input = BufReader::with_capacity(128 << 10, input);
    let header = Header::read(&mut input)?;
    let board = checks::check_header(root, &header)?;
    let m = &header.manifest;
    crate::steplog::log(root, &format!("apply: bundle for {} verified", board.name));
    let loc = JournalLocation::locate(root, opts.journal.as_deref());
    let made = crate::staging::missing_dirs(&loc.staging());
    let _lock = loc.lock()?;
    let staged = match stage(root, &board, m, &mut input, opts, devices) {
        Ok(s) => s,
        Err(e) => {
            crate::staging::journal::remove_made(&loc, &made);
            return Err(e);
        }
    };
    let result = match board.strategy {
        Strategy::Raw | Strategy::Ubi => {
            let jobs = jobs(&board, &staged)?;
            image::write_all(root, devices, &jobs, &loc, opts.in_place, progress).map(|r| (r, None))
        }
        Strategy::AbZyxel | Strategy::AbUboot => ab::install(root, &board, &staged, opts.reboot)
            .map(|r| (Vec::new(), Some(r)))
            .map_err(Into::into),
    };
    for s in &staged {
        let _ = std::fs::remove_file(&s.path);
    }
    let (images, ab) = result?;
    checks::record_epoch(root, m.epoch)?;
    if opts.reboot && ab.is_none() {
        crate::closure::activate::reboot()?;
    }
    Ok(ApplyReport {
        board: board.name.clone(),
        strategy: board.strategy.as_str(),
        epoch: m.epoch,
        images,
        ab,
    })
}

/// Checks every target and stages every image: the last steps that may refuse the bundle before
/// the first flash write.
fn stage(
    root: &DeviceRoot,
    board: &liminix_boards::Board,
    m: &liminix_bundle::Manifest,
    input: &mut impl Read,
    opts: &ApplyOptions,
    devices: &mut dyn Devices,
) -> Result<Vec<StagedFile>> {
    if !board.strategy.is_ab() {
        // Check the targets with the manifest's sizes before a payload byte is read.
        image::precheck(board, devices, &jobs(board, &planned(m))?, opts.in_place)?;
    }
    let staging = opts.staging.clone().unwrap_or_else(|| root.image_staging());
    if board.strategy.is_ab() {
        let mut bases = slot_bases::SlotBases::on_device(root, board);
        return crate::staging::images::stage_images(input, m, &staging, &mut bases);
    }
    let mut bases = bases::DeviceBases { board, devices };
    crate::staging::images::stage_images(input, m, &staging, &mut bases)
}

/// The images of `m` as they will be staged, before anything is: for the checks that need only
/// their names, sizes and hashes.
pub fn planned(m: &liminix_bundle::Manifest) -> Vec<StagedFile> {
    m.images
        .iter()
        .map(|i| StagedFile {
            name: i.name.clone(),
            path: PathBuf::new(),
            sha256: i.sha256_bytes(),
            size: i.size,
        })
        .collect()
}

fn jobs<'a>(
    board: &'a liminix_boards::Board,
    staged: &'a [StagedFile],
) -> Result<Vec<image::Job<'a>>> {
    staged
        .iter()
        .map(|s| {
            let to = board.resolve(&s.name, None).map_err(ApplyError::from)?;
            Ok(image::Job { image: s, to })
        })
        .collect()
}
