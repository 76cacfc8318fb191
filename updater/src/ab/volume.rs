//! The inactive slot's UBI volume: whether it can take the image as it is, or must be
//! made (again) first, and making it. Planning only reads the device, so an install checks
//! it before the slot is touched.

use liminix_flash::{Ubi, VolKind};

use super::install::{VolumeAction, VolumeSpec};
use super::slot::Slot;
use super::{AbError, LayoutError};

/// What must happen to the volume before the image goes in.
pub(super) enum VolumePlan {
    Keep(u32),
    Make {
        remove: Option<u32>,
        bytes: u64,
        kind: VolKind,
    },
}

pub(super) enum PlanError {
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
    pub(super) fn in_slot(self, slot: Slot, name: &str, len: u64) -> AbError {
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
pub(super) fn plan_volume(
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
pub(super) fn prepare_volume(
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
