//! Installing into the inactive slot. [`install`] is the A/B strategy's entry: it verifies
//! the staged images, refuses what does not fit or a running slot that is itself an
//! unconfirmed trial, opens the slot's targets and records the pending trial.
//! [`install_slot`] writes the slot: size checks before any write, then "not bootable",
//! kernel, root filesystem, "try next" — the order that keeps every reset on a complete slot.
//!
//! The writer works on the liminix-flash traits, so the simulators with power cuts run
//! exactly what runs on the device ([`super::devices`] opens the real targets).

use std::path::PathBuf;

use liminix_flash::raw::check_fits;
use liminix_flash::ubi_update::{volume_equals, write_volume, VolumeWriteError};
use liminix_flash::{
    scan_raw, FileImage, Flash, ImageSource, NoProgress, RawError, RawOptions, RawScan, Ubi,
    VolKind,
};
use serde::Serialize;

use super::devices::{open_flow, open_target, OpenTarget, UbiAttach};
use super::flow::BootFlow;
use super::record::{self, Pending};
use super::slot::{Slot, SlotLayout, SlotTargets, Target};
use super::status::booted_slot;
use super::volume::{plan_volume, prepare_volume};
use super::{AbError, ConfigError, LayoutError, RefusedError, VerifyError, WriteError};
use crate::root::DeviceRoot;

/// How to make a slot's UBI volume that is missing, too small or of the wrong type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSpec {
    pub kind: VolKind,
    /// Bytes to reserve; `None`: all the space the device has (with the old volume's).
    pub bytes: Option<u64>,
}

/// Where a slot's root filesystem goes.
pub enum RootfsDev<'a> {
    /// A raw partition (a UBI partition takes a ubinized image).
    Raw(&'a mut dyn Flash),
    /// A volume of a UBI device, replaced in place (it belongs to the inactive slot, so
    /// nothing has it mounted). With `make`, a volume that is missing, too small or of
    /// another type is (re)made after the slot is marked not bootable; without, it must
    /// exist and be large enough.
    Volume {
        ubi: &'a mut dyn Ubi,
        name: String,
        make: Option<VolumeSpec>,
    },
}

/// The opened targets of one slot. The writers sync each target when they are done
/// with it (`Flash::sync`, `Ubi::sync`: MTD and UBI on block2mtd buffer writes like
/// a block device), so the slot is durable before the flow arms it.
pub struct SlotDevs<'a> {
    pub kernel: &'a mut dyn Flash,
    pub rootfs: Option<RootfsDev<'a>>,
}

/// An image and the SHA-256 it was verified against (the bundle manifest's). What
/// is written must hash the same, so a staged file that changed after verification
/// is refused.
#[derive(Clone, Copy)]
pub struct Verified<'a> {
    pub src: &'a dyn ImageSource,
    pub sha256: [u8; 32],
}

impl Verified<'_> {
    pub fn len(&self) -> u64 {
        self.src.len()
    }

    pub fn is_empty(&self) -> bool {
        self.src.is_empty()
    }
}

#[cfg(test)]
impl<'a> Verified<'a> {
    /// A test image with the hash it really has.
    pub fn of(src: &'a dyn ImageSource) -> Self {
        let sha256 = src.sha256().expect("test images are readable");
        Verified { src, sha256 }
    }
}

/// The verified images for one slot.
pub struct SlotImages<'a> {
    pub kernel: Verified<'a>,
    pub rootfs: Option<Verified<'a>>,
}

/// What happened to the slot's UBI volume before it was written.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeAction {
    /// The volume was there and large enough.
    Kept,
    /// The volume did not exist and was made with `bytes` reserved.
    Created { bytes: u64 },
    /// The volume was too small (or of the other type) and was made again.
    Remade { bytes: u64 },
}

/// What an install wrote.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InstallReport {
    pub slot: Slot,
    pub kernel_bytes: u64,
    pub kernel_blocks_rewritten: u64,
    pub rootfs_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs_volume: Option<VolumeAction>,
}

fn too_large(what: &'static str, slot: Slot, len: u64, max: u64) -> AbError {
    LayoutError::TooLarge {
        what,
        slot,
        len,
        max,
    }
    .into()
}

/// Refuses images that do not fit the slot as the layout describes it (its board's
/// limits), before any device of the slot is opened.
pub fn check_sizes(slot: Slot, layout: &SlotTargets, imgs: &SlotImages) -> Result<(), AbError> {
    let klen = imgs.kernel.len();
    if klen == 0 || klen > layout.kernel_max {
        return Err(too_large("kernel", slot, klen, layout.kernel_max));
    }
    match (&layout.rootfs, imgs.rootfs) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(LayoutError::NoRootfsImage(slot).into()),
        (None, Some(_)) => Err(LayoutError::NoRootfsTarget(slot).into()),
        (Some(_), Some(img)) if img.len() > layout.rootfs_max => {
            Err(too_large("rootfs", slot, img.len(), layout.rootfs_max))
        }
        (Some(_), Some(_)) => Ok(()),
    }
}

/// Refuses, before anything is written, images that do not fit the slot: the layout's
/// limits, then the opened devices (good blocks, the UBI device's room).
pub fn check_layout(
    slot: Slot,
    layout: &SlotTargets,
    devs: &mut SlotDevs,
    imgs: &SlotImages,
) -> Result<(), AbError> {
    check_sizes(slot, layout, imgs)?;
    check_fits(devs.kernel, imgs.kernel.len()).map_err(does_not_fit("kernel"))?;
    match (&mut devs.rootfs, imgs.rootfs) {
        (Some(RootfsDev::Raw(f)), Some(img)) => {
            check_fits(*f, img.len()).map_err(does_not_fit("rootfs"))
        }
        (Some(RootfsDev::Volume { ubi, name, make }), Some(img)) => {
            plan_volume(*ubi, name, make.as_ref(), img.len())
                .map_err(|e| e.in_slot(slot, name, img.len()))
                .map(drop)
        }
        _ => Ok(()),
    }
}

/// What a staged image is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageRole {
    Kernel,
    Rootfs,
}

/// An image the caller extracted from a verified bundle, with the hash its signed
/// manifest gives.
#[derive(Debug, Clone)]
pub struct StagedImage {
    pub role: ImageRole,
    pub path: PathBuf,
    pub sha256: [u8; 32],
}

/// Caller's choices for [`install`].
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The board the bundle was built for.
    pub bundle_board: String,
    /// Reboot into the new slot when done.
    pub reboot: bool,
}

/// What [`install`] did.
#[derive(Debug, Clone, Serialize)]
pub struct InstallSummary {
    pub from: Slot,
    pub to: Slot,
    pub install: InstallReport,
    /// The slot's UBI partition, when the agent attached it for the install (and
    /// detached it after).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ubi_attached: Option<UbiAttach>,
    pub rebooted: bool,
}

fn does_not_fit(what: &'static str) -> impl FnOnce(RawError) -> AbError {
    move |source| LayoutError::DoesNotFit { what, source }.into()
}

fn verified((src, sha256): &(FileImage, [u8; 32])) -> Verified<'_> {
    Verified {
        src,
        sha256: *sha256,
    }
}

fn one_image(
    images: &[StagedImage],
    role: ImageRole,
) -> Result<Option<(FileImage, [u8; 32])>, AbError> {
    let mut it = images.iter().filter(|i| i.role == role);
    let Some(img) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(LayoutError::TwoImages(role).into());
    }
    let src = FileImage::new(&img.path).map_err(|e| AbError::io("open staged image", e))?;
    let got = src
        .sha256()
        .map_err(|e| AbError::io("read staged image", e))?;
    if got != img.sha256 {
        return Err(VerifyError::Staged {
            path: img.path.clone(),
            got,
            want: img.sha256,
        }
        .into());
    }
    Ok(Some((src, got)))
}

/// Verifies the images, writes the slot that is not running, makes it the one to try
/// next and (if asked) reboots. Nothing is written when the board, a hash or the
/// layout is wrong, or when the running slot is itself an unconfirmed trial; all of
/// that is checked before a device of the slot is opened (which may attach its UBI
/// partition, see [`super::SlotUbi`]).
pub fn install(
    root: &DeviceRoot,
    board: &SlotLayout,
    images: &[StagedImage],
    opts: &InstallOptions,
) -> Result<InstallSummary, AbError> {
    if opts.bundle_board != board.board {
        return Err(AbError::WrongBoard {
            bundle: opts.bundle_board.clone(),
            device: board.board.clone(),
        });
    }
    let kernel = one_image(images, ImageRole::Kernel)?.ok_or(LayoutError::NoKernel)?;
    let rootfs = one_image(images, ImageRole::Rootfs)?;
    let imgs = SlotImages {
        kernel: verified(&kernel),
        rootfs: rootfs.as_ref().map(verified),
    };
    let from = booted_slot(root, board)?;
    let to = from.other();
    let layout = board.slot(to);
    check_sizes(to, layout, &imgs)?;
    check_own_targets(board, to)?;
    let mut flow = open_flow(root, board)?;
    let state = flow.state()?;
    if state.committed != from {
        return Err(RefusedError::Unconfirmed {
            running: from,
            committed: state.committed,
        }
        .into());
    }
    let mut kdev = open_target(root, &layout.kernel)?;
    let mut rdev = layout
        .rootfs
        .as_ref()
        .map(|t| open_target(root, t))
        .transpose()?;
    let devs = SlotDevs {
        kernel: raw_of(&mut kdev)?,
        rootfs: rdev.as_mut().map(rootfs_of),
    };
    crate::steplog::log(root, &format!("ab: erase-write-verify slot {to}"));
    let install = install_slot(flow.as_mut(), to, layout, devs, &imgs)?;
    let ubi_attached = rdev.and_then(close_target);
    record::set_pending(
        root,
        &Pending {
            from,
            to,
            installed_at: crate::now(),
            images: images.iter().map(|i| hex::encode(i.sha256)).collect(),
        },
    )?;
    crate::steplog::log(root, &format!("ab: slot {to} armed for the next boot"));
    if opts.reboot {
        crate::closure::activate::reboot().map_err(|e| AbError::Reboot(Box::new(e)))?;
    }
    Ok(InstallSummary {
        from,
        to,
        install,
        ubi_attached,
        rebooted: opts.reboot,
    })
}

/// Refuses a layout whose slot `to` shares a target with the other (running) slot.
fn check_own_targets(board: &SlotLayout, to: Slot) -> Result<(), AbError> {
    let targets = |s: Slot| {
        let l = board.slot(s);
        std::iter::once(&l.kernel).chain(l.rootfs.as_ref())
    };
    let running: Vec<&Target> = targets(to.other()).collect();
    match targets(to).find(|t| running.contains(t)) {
        Some(t) => Err(ConfigError::SharedTarget {
            slot: to,
            target: t.clone(),
        }
        .into()),
        None => Ok(()),
    }
}

fn raw_of(t: &mut OpenTarget) -> Result<&mut dyn liminix_flash::Flash, AbError> {
    match t {
        OpenTarget::Mtd(f) => Ok(f),
        OpenTarget::Block(f) => Ok(f),
        OpenTarget::Volume { .. } => Err(ConfigError::KernelOnVolume.into()),
    }
}

fn rootfs_of(t: &mut OpenTarget) -> RootfsDev<'_> {
    match t {
        OpenTarget::Mtd(f) => RootfsDev::Raw(f),
        OpenTarget::Block(f) => RootfsDev::Raw(f),
        OpenTarget::Volume { ubi, name, make } => RootfsDev::Volume {
            ubi: ubi.ubi(),
            name: name.clone(),
            make: *make,
        },
    }
}

/// Closes a target; a UBI device attached for the install is detached again.
fn close_target(t: OpenTarget) -> Option<UbiAttach> {
    match t {
        OpenTarget::Volume { ubi, .. } => ubi.close(),
        _ => None,
    }
}

/// Per-block verification is complete (unchanged blocks compared in full, rewritten
/// ones read back), so the writer's extra whole-image read would only repeat reads.
fn writer_options() -> RawOptions {
    RawOptions {
        final_read_back: false,
        ..RawOptions::default()
    }
}

/// The raw writer's compare pass (reads and hashes, writes nothing), refusing an
/// image that no longer hashes as verified.
fn scan(what: &'static str, flash: &mut dyn Flash, img: Verified) -> Result<RawScan, AbError> {
    let opts = RawOptions {
        expect_sha256: Some(img.sha256),
        ..writer_options()
    };
    scan_raw(flash, img.src, &opts, &mut NoProgress).map_err(|e| match e {
        source @ RawError::NotVerified { .. } => VerifyError::Scan { what, source }.into(),
        source => WriteError::Raw { what, source }.into(),
    })
}

fn same_hash(what: &'static str, got: [u8; 32], want: [u8; 32]) -> Result<(), AbError> {
    if got != want {
        return Err(VerifyError::Changed { what, got, want }.into());
    }
    Ok(())
}

fn write_rootfs(
    slot: Slot,
    dev: &mut RootfsDev,
    img: Verified,
    raw_scan: Option<RawScan>,
) -> Result<Option<VolumeAction>, AbError> {
    match (dev, raw_scan) {
        (RootfsDev::Raw(f), Some(scan)) => {
            scan.write(*f, img.src, &writer_options(), &mut NoProgress)
                .map_err(|source| WriteError::Raw {
                    what: "rootfs",
                    source,
                })?;
            Ok(None)
        }
        (RootfsDev::Raw(_), None) => unreachable!("raw targets are scanned before writing"),
        (RootfsDev::Volume { ubi, name, make }, _) => {
            let plan = plan_volume(*ubi, name, make.as_ref(), img.len())
                .map_err(|e| e.in_slot(slot, name, img.len()))?;
            let (id, action) = prepare_volume(*ubi, name, plan)?;
            let sha =
                write_volume(*ubi, id, img.src, &mut NoProgress).map_err(volume_write(name))?;
            same_hash("rootfs", sha, img.sha256)?;
            let same =
                volume_equals(*ubi, id, img.src, &mut NoProgress).map_err(volume_write(name))?;
            if !same {
                return Err(VerifyError::VolumeReadBack(name.clone()).into());
            }
            Ok(Some(action))
        }
    }
}

fn volume_write(volume: &str) -> impl FnOnce(VolumeWriteError) -> AbError + '_ {
    move |source| {
        WriteError::Volume {
            volume: volume.to_owned(),
            source,
        }
        .into()
    }
}

/// Installs `imgs` into `slot` and makes it the one to try at the next reset.
///
/// Order: sizes are checked and raw targets compared with their images, which also
/// re-hashes them (nothing written on failure); the flow makes sure no reset boots
/// `slot`; the kernel is written, the rootfs volume (re)made if it must be, the root
/// filesystem written, both read back and synced; only then does the flow point the
/// next reset at `slot`.
pub fn install_slot(
    flow: &mut dyn BootFlow,
    slot: Slot,
    layout: &SlotTargets,
    mut devs: SlotDevs,
    imgs: &SlotImages,
) -> Result<InstallReport, AbError> {
    check_layout(slot, layout, &mut devs, imgs)?;
    let kscan = scan("kernel", devs.kernel, imgs.kernel)?;
    let rscan = match (devs.rootfs.as_mut(), imgs.rootfs) {
        (Some(RootfsDev::Raw(f)), Some(img)) => Some(scan("rootfs", *f, img)?),
        _ => None,
    };
    flow.prepare_write(slot)?;
    let k = kscan
        .write(
            devs.kernel,
            imgs.kernel.src,
            &writer_options(),
            &mut NoProgress,
        )
        .map_err(|source| WriteError::Raw {
            what: "kernel",
            source,
        })?;
    let mut rootfs_volume = None;
    if let (Some(dev), Some(img)) = (devs.rootfs.as_mut(), imgs.rootfs) {
        rootfs_volume = write_rootfs(slot, dev, img, rscan)?;
    }
    flow.try_next(slot)?;
    Ok(InstallReport {
        slot,
        kernel_bytes: k.image_len,
        kernel_blocks_rewritten: k.rewritten_blocks,
        rootfs_bytes: imgs.rootfs.map_or(0, |i| i.len()),
        rootfs_volume,
    })
}
