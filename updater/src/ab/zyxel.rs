//! `ZyxelFlow`: the NWA50AX dual-image bootconfig (docs/formats/zyxel-bootconfig.md).
//!
//! The vendor U-Boot boots the first image whose status is NEW after rewriting it to
//! INVALID, else the active image. So "try next" is status NEW, "confirm" is VALID plus
//! the active bit, and an unconfirmed trial is found INVALID by the old slot's agent.
//! A slot that is to be overwritten, or whose trial is cancelled, gets status NONE:
//! not tried, not failed.
//!
//! The two bytes have no checksum and live in one NAND erase block, so a write is an
//! erase followed by a program. A power cut between the two leaves `FF FF`, which the
//! vendor reads as "both invalid, active image 1". The strategy only writes when the
//! bytes change, and only after the slot it points at is complete, so even that torn
//! state boots a complete slot (proven by the power-cut enumeration in `tests`).

use liminix_bootenv::zyxel::BootconfigDevice;
use liminix_bootenv::{Bootconfig, ImageStatus};

use super::flow::{BootFlow, FlowState};
use super::slot::Slot;
use super::{AbError, RefusedError};

/// The Zyxel boot flow over the bootconfig partition (a real MTD device, or the simulator in
/// tests: [`BootconfigDevice`] works on any flash).
pub struct ZyxelFlow {
    device: BootconfigDevice,
}

impl ZyxelFlow {
    pub fn new(device: BootconfigDevice) -> Self {
        ZyxelFlow { device }
    }

    fn read(&mut self) -> Result<Bootconfig, AbError> {
        self.device.read().map_err(AbError::boot("read bootconfig"))
    }

    /// Writes `bc` (OpenWrt encoding, other bytes kept); the device reads it back.
    fn write(&mut self, bc: &Bootconfig) -> Result<(), AbError> {
        self.device
            .write(bc)
            .map(|_| ())
            .map_err(AbError::boot("write bootconfig"))
    }

    /// Reads, lets `change` edit, writes only if the bytes the tool writes differ.
    fn update(&mut self, change: impl FnOnce(&mut Bootconfig)) -> Result<(), AbError> {
        let old = self.read()?;
        let mut new = old;
        change(&mut new);
        if new.encode_tool() != old.encode_tool() {
            self.write(&new)?;
        }
        Ok(())
    }
}

/// The state a bootconfig describes.
pub fn zyxel_state(bc: &Bootconfig) -> FlowState {
    let trying = bc
        .status
        .iter()
        .position(|s| *s == ImageStatus::New)
        .map(|i| (Slot::from_index(i), 1));
    FlowState {
        committed: Slot::from_index(bc.active as usize),
        trying,
        failed: bc.status.map(|s| s == ImageStatus::Invalid),
    }
}

impl BootFlow for ZyxelFlow {
    fn name(&self) -> &'static str {
        "zyxel-bootconfig"
    }

    fn state(&mut self) -> Result<FlowState, AbError> {
        Ok(zyxel_state(&self.read()?))
    }

    fn prepare_write(&mut self, slot: Slot) -> Result<(), AbError> {
        let bc = self.read()?;
        if Slot::from_index(bc.active as usize) == slot {
            return Err(RefusedError::ActiveImage(slot).into());
        }
        self.update(|bc| {
            if bc.status[slot.index()] == ImageStatus::New {
                bc.status[slot.index()] = ImageStatus::None;
            }
        })
    }

    fn try_next(&mut self, slot: Slot) -> Result<(), AbError> {
        self.update(|bc| {
            let other = slot.other().index();
            // The vendor tries the first NEW image; only ours may be NEW.
            if bc.status[other] == ImageStatus::New {
                bc.status[other] = ImageStatus::Valid;
            }
            bc.status[slot.index()] = ImageStatus::New;
        })
    }

    fn mark_good(&mut self, slot: Slot) -> Result<(), AbError> {
        self.update(|bc| {
            bc.status[slot.index()] = ImageStatus::Valid;
            bc.active = slot.index() as u8;
        })
    }

    fn mark_bad(&mut self, slot: Slot) -> Result<(), AbError> {
        self.update(|bc| {
            bc.status[slot.index()] = ImageStatus::Invalid;
            let other = slot.other().index();
            if bc.active as usize == slot.index() && bc.status[other] != ImageStatus::Invalid {
                bc.active = other as u8;
            }
        })
    }

    fn set_committed(&mut self, slot: Slot) -> Result<(), AbError> {
        self.update(|bc| {
            for s in &mut bc.status {
                if *s == ImageStatus::New {
                    *s = ImageStatus::None;
                }
            }
            bc.active = slot.index() as u8;
        })
    }
}
