//! Writing the inactive slot: size checks before any write, then "not bootable",
//! kernel, root filesystem, "try next" — the order that keeps every reset on a
//! complete slot.
//!
//! The code works on the liminix-flash traits, so the simulators with power cuts run
//! exactly what runs on the device ([`super::devices`] opens the real targets).

use liminix_flash::raw::check_fits;
use liminix_flash::ubi_update::{volume_equals, write_volume, VolumeWriteError};
use liminix_flash::{
    scan_raw, Flash, ImageSource, NoProgress, RawError, RawOptions, RawScan, Ubi, VolKind,
};
use serde::Serialize;

use super::flow::BootFlow;
use super::slot::{Slot, SlotLayout};
use super::{AbError, LayoutError, VerifyError, WriteError};

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

/// The opened targets of one slot.
pub struct SlotDevs<'a> {
    pub kernel: &'a mut dyn Flash,
    pub rootfs: Option<RootfsDev<'a>>,
    /// Files (block devices) whose page cache must reach the disk before the slot is
    /// armed; MTD and UBI writes are synchronous and need nothing here.
    pub durable: Vec<std::fs::File>,
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
pub fn check_sizes(slot: Slot, layout: &SlotLayout, imgs: &SlotImages) -> Result<(), AbError> {
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
    layout: &SlotLayout,
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

fn does_not_fit(what: &'static str) -> impl FnOnce(RawError) -> AbError {
    move |source| LayoutError::DoesNotFit { what, source }.into()
}

/// What must happen to the volume before the image goes in.
enum VolumePlan {
    Keep(u32),
    Make {
        remove: Option<u32>,
        bytes: u64,
        kind: VolKind,
    },
}

enum PlanError {
    Io(liminix_flash::UbiError),
    /// The most the volume can hold, and the other volumes that take the rest.
    TooLarge {
        max: u64,
        others: Vec<String>,
    },
    /// The layout's volume size does not fit the device's free space.
    NoRoom {
        size: u64,
        room: u64,
        others: Vec<String>,
    },
    Missing(String),
}

impl PlanError {
    fn in_slot(self, slot: Slot, name: &str, len: u64) -> AbError {
        match self {
            PlanError::Io(e) => AbError::io("UBI volumes", e),
            PlanError::TooLarge { max, others } => LayoutError::VolumeTooLarge {
                slot,
                volume: name.to_owned(),
                len,
                max,
                others,
            }
            .into(),
            PlanError::NoRoom { size, room, others } => LayoutError::NoRoom {
                slot,
                volume: name.to_owned(),
                size,
                room,
                others,
            }
            .into(),
            PlanError::Missing(volume) => LayoutError::NoVolume { slot, volume }.into(),
        }
    }
}

/// Decides from the device what to do with the volume; reads only.
fn plan_volume(
    ubi: &mut dyn Ubi,
    name: &str,
    make: Option<&VolumeSpec>,
    len: u64,
) -> Result<VolumePlan, PlanError> {
    let current = ubi.volume_by_name(name).map_err(PlanError::Io)?;
    let Some(spec) = make else {
        let vol = current.ok_or_else(|| PlanError::Missing(name.into()))?;
        if len > vol.reserved_bytes {
            return Err(PlanError::TooLarge {
                max: vol.reserved_bytes,
                others: Vec::new(),
            });
        }
        return Ok(VolumePlan::Keep(vol.id));
    };
    if let Some(v) = current.as_ref() {
        if v.kind == spec.kind && len <= v.reserved_bytes {
            return Ok(VolumePlan::Keep(v.id));
        }
    }
    let room = ubi.avail_bytes().map_err(PlanError::Io)?
        + current.as_ref().map_or(0, |v| v.reserved_bytes);
    let bytes = spec.bytes.unwrap_or(room);
    if len > bytes || bytes > room {
        let others = other_volumes(ubi, name)?;
        return Err(if len > bytes {
            PlanError::TooLarge { max: bytes, others }
        } else {
            PlanError::NoRoom {
                size: bytes,
                room,
                others,
            }
        });
    }
    Ok(VolumePlan::Make {
        remove: current.map(|v| v.id),
        bytes,
        kind: spec.kind,
    })
}

fn other_volumes(ubi: &mut dyn Ubi, name: &str) -> Result<Vec<String>, PlanError> {
    let vols = ubi.volumes().map_err(PlanError::Io)?;
    Ok(vols
        .into_iter()
        .map(|v| v.name)
        .filter(|n| n != name)
        .collect())
}

/// Makes the volume the plan asks for; the slot is not bootable by now, so its old
/// volume may go.
fn prepare_volume(
    ubi: &mut dyn Ubi,
    name: &str,
    plan: VolumePlan,
) -> Result<(u32, VolumeAction), AbError> {
    let io = |e| AbError::io("UBI volume", e);
    match plan {
        VolumePlan::Keep(id) => Ok((id, VolumeAction::Kept)),
        VolumePlan::Make {
            remove,
            bytes,
            kind,
        } => {
            if let Some(id) = remove {
                ubi.remove_volume(id).map_err(io)?;
            }
            let id = ubi.make_volume(name, bytes, kind).map_err(io)?;
            let action = match remove {
                Some(_) => VolumeAction::Remade { bytes },
                None => VolumeAction::Created { bytes },
            };
            Ok((id, action))
        }
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
/// filesystem written, both read back; only then does the flow point the next reset
/// at `slot`.
pub fn install_slot(
    flow: &mut dyn BootFlow,
    slot: Slot,
    layout: &SlotLayout,
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
    for f in &devs.durable {
        f.sync_all()
            .map_err(|e| AbError::io("flush slot to disk", e))?;
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
