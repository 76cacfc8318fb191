//! `image-plan`: what `update.sh` asks before it sends an image bundle. The agent reads the
//! bundle's header, checks it as `apply` would (trusted signature, board, images, epoch), says
//! whether a raw target is read by the running system (then the update must levitate) and
//! whether RAM can hold what the levitated update needs. With `keep`, it reads the whole
//! bundle, verifies every image against the manifest and keeps the bundle in a file in RAM for
//! the maintenance root to apply. Nothing is written to flash here.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use liminix_boards::{Board, Place};
use liminix_bundle::stream::Header;
use liminix_bundle::Manifest;
use liminix_recovery::system::Choices;
use serde::Serialize;

use crate::apply::checks;
use crate::error::{AgentError, Result};
use crate::levitate::{self, LevitateError, MARGIN};
use crate::root::DeviceRoot;

/// One image of the bundle and whether its target is in use.
#[derive(Debug, Serialize)]
pub struct PlannedImage {
    pub image: String,
    pub target: String,
    pub bytes: u64,
    /// Which mount reads the target, in words, if one does.
    pub in_use_by: Option<String>,
}

/// The answer of `image-plan`.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub board: String,
    /// The device's highest installed epoch and the bundle's.
    pub from_epoch: u64,
    pub to_epoch: u64,
    pub images: Vec<PlannedImage>,
    /// A raw target is in use: the images can only be written from the maintenance root.
    pub levitate: bool,
    /// RAM the levitated update takes, in bytes (zero when it does not levitate).
    pub needs: RamNeeds,
    pub mem_available: u64,
    /// Free bytes of the filesystem of `/run` (a tmpfs), where all of it is kept.
    pub run_free: u64,
}

/// What a levitated update keeps in RAM at once.
#[derive(Debug, Default, Serialize)]
pub struct RamNeeds {
    /// The bundle file the maintenance root applies.
    pub bundle: u64,
    /// The images `apply` stages, decoded, before it writes.
    pub images: u64,
    /// The maintenance root itself.
    pub root: u64,
    /// For the processes of the maintenance root.
    pub margin: u64,
}

impl RamNeeds {
    /// Bytes that must fit in `/run`: everything but the processes' margin.
    pub fn files(&self) -> u64 {
        self.bundle
            .saturating_add(self.images)
            .saturating_add(self.root)
    }

    pub fn total(&self) -> u64 {
        self.files().saturating_add(self.margin)
    }
}

/// Reads the header from `input`, checks it and plans the update of a bundle of
/// `bundle_bytes` bytes; refuses when the levitated update would not fit in RAM.
pub fn plan(root: &DeviceRoot, input: &mut dyn Read, bundle_bytes: u64) -> Result<Plan> {
    let header = Header::read(&mut &mut *input)?;
    let (board, from_epoch) = check(root, &header)?;
    let m = &header.manifest;
    let images = m
        .images
        .iter()
        .map(|i| planned(root, &board, i))
        .collect::<Result<Vec<_>>>()?;
    // A patch whose base the flash does not hold is refused before anything is sent, so that
    // the sender can send the whole image instead.
    crate::apply::patch::check_bases(root, &board, m, &mut crate::apply::RealDevices::new(root))?;
    let levitate = images.iter().any(|i| i.in_use_by.is_some());
    let needs = match levitate {
        true => ram_needs(root, m, bundle_bytes)?,
        false => RamNeeds::default(),
    };
    let mem_available = levitate::mem_available(&root.meminfo())?;
    let run = root.run_dir();
    let (run_free, _, _) = crate::staging::free_space(run.parent().unwrap_or(&run))?;
    let plan = Plan {
        board: board.name.clone(),
        from_epoch,
        to_epoch: m.epoch,
        images,
        levitate,
        needs,
        mem_available,
        run_free,
    };
    refuse_unless_it_fits(&plan)?;
    Ok(plan)
}

/// The checks `apply` makes before it opens a target; the device's highest epoch.
fn check(root: &DeviceRoot, header: &Header) -> Result<(Board, u64)> {
    let board = checks::check_header(root, header)?;
    Ok((board, checks::highest_epoch(root)?))
}

fn planned(
    root: &DeviceRoot,
    board: &Board,
    image: &liminix_bundle::ImageEntry,
) -> Result<PlannedImage> {
    let image_words = |in_use_by| PlannedImage {
        image: image.name.clone(),
        target: image.target.clone(),
        bytes: image.size,
        in_use_by,
    };
    // A/B boards write the slot that is not running: nothing reads it.
    if board.strategy.is_ab() {
        return Ok(image_words(None));
    }
    let resolved = board
        .resolve(&image.name, None)
        .map_err(crate::apply::ApplyError::from)?;
    let in_use_by = match &resolved.place {
        Place::Raw { partition, .. } => {
            let index = crate::apply::targets::mtd_index(root, partition)?;
            liminix_flash::in_use::partition_in_use(root.dir(), index)
                .map_err(crate::flashops::FlashOpError::from)?
                .map(|u| crate::flashops::in_use_words(&u))
        }
        // A UBI volume is swapped in by a rename: never written under its reader.
        Place::Ubi { .. } => None,
    };
    Ok(image_words(in_use_by))
}

/// The bundle, the staged images and the maintenance root as `levitate` would make it now.
fn ram_needs(root: &DeviceRoot, m: &Manifest, bundle_bytes: u64) -> Result<RamNeeds> {
    let agent = std::env::current_exe().map_err(AgentError::io("finding", "/proc/self/exe"))?;
    let (_, mut maintenance) = levitate::describe(root, &agent, &Choices::default())?;
    levitate::carry_config(root, &mut maintenance)?;
    Ok(RamNeeds {
        bundle: bundle_bytes,
        images: m.total_image_size(),
        root: maintenance.ram_bytes(),
        margin: MARGIN,
    })
}

fn refuse_unless_it_fits(p: &Plan) -> Result<()> {
    if !p.levitate {
        return Ok(());
    }
    let n = &p.needs;
    if n.total() > p.mem_available || n.files() > p.run_free {
        return Err(LevitateError::UpdateRam {
            bundle: n.bundle,
            images: n.images,
            root: n.root,
            margin: n.margin,
            available: p.mem_available,
            run_free: p.run_free,
        }
        .into());
    }
    Ok(())
}

/// Reads a whole bundle from `input` into `keep` (through `keep.partial`, renamed when every
/// image verified): the same checks as [`plan`], then each image decoded and hashed in a
/// scratch directory beside `keep`, removed again. On any failure nothing is left.
pub fn keep(root: &DeviceRoot, input: &mut dyn Read, keep: &Path) -> Result<Plan> {
    let partial = with_suffix(keep, ".partial");
    let scratch = with_suffix(keep, ".check");
    if let Some(dir) = keep.parent() {
        std::fs::create_dir_all(dir).map_err(AgentError::io("creating", dir))?;
    }
    let result = keep_through(root, input, &partial, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    match result {
        Ok(plan) => {
            std::fs::rename(&partial, keep).map_err(AgentError::io("renaming to", keep))?;
            Ok(plan)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn keep_through(
    root: &DeviceRoot,
    input: &mut dyn Read,
    partial: &Path,
    scratch: &Path,
) -> Result<Plan> {
    let file = File::create(partial).map_err(AgentError::io("creating", partial))?;
    let mut tee = Tee {
        input,
        copy: io::BufWriter::new(file),
        written: 0,
        failed: None,
    };
    let header = Header::read(&mut tee)?;
    let (board, from_epoch) = check(root, &header)?;
    let m = &header.manifest;
    crate::apply::bases::stage_on_device(root, &board, &mut tee, m, scratch)?;
    // Whatever follows the end marker goes into the file too: `apply` refuses it there.
    io::copy(&mut tee, &mut io::sink()).map_err(AgentError::io("reading", "stdin"))?;
    if let Some(e) = tee.failed.take() {
        return Err(AgentError::io("writing", partial)(e));
    }
    let bundle = tee.written;
    tee.copy
        .flush()
        .map_err(|e| AgentError::io("writing", partial)(e))?;
    let images = m
        .images
        .iter()
        .map(|i| planned(root, &board, i))
        .collect::<Result<Vec<_>>>()?;
    let (run_free, _, _) = crate::staging::free_space(scratch.parent().unwrap_or(scratch))?;
    Ok(Plan {
        board: board.name.clone(),
        from_epoch,
        to_epoch: m.epoch,
        levitate: images.iter().any(|i| i.in_use_by.is_some()),
        images,
        needs: RamNeeds {
            bundle,
            ..RamNeeds::default()
        },
        mem_available: levitate::mem_available(&root.meminfo())?,
        run_free,
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Copies what is read into a file; a failed write is kept for the caller (the reader's
/// errors must stay the stream's, which say where the bundle broke).
struct Tee<'a, W: Write> {
    input: &'a mut dyn Read,
    copy: W,
    written: u64,
    failed: Option<io::Error>,
}

impl<W: Write> Read for Tee<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        if self.failed.is_none() {
            match self.copy.write_all(&buf[..n]) {
                Ok(()) => self.written = self.written.saturating_add(n as u64),
                Err(e) => self.failed = Some(e),
            }
        }
        Ok(n)
    }
}
