//! The fuzz board's flash: the `vm-nor` firmware partition as liminix-flash's NOR simulator,
//! handed to `apply` through the same [`Devices`] trait the real device uses.

use liminix_boards::Partition;
use liminix_flash::{Flash, SimFlash, Ubi};

use crate::apply::{ApplyError, Devices};

pub struct SimDevices {
    firmware: SimFlash,
}

impl SimDevices {
    /// 64 blocks of 64 KiB, as `vm-nor` describes its partition.
    pub fn new() -> Self {
        SimDevices {
            firmware: SimFlash::nor(64, 0x10000),
        }
    }
}

fn not_simulated(p: &Partition) -> ApplyError {
    ApplyError::Device {
        target: p.name.clone(),
        source: "not simulated by the fuzz board".into(),
    }
}

impl Devices for SimDevices {
    fn raw(&mut self, p: &Partition) -> Result<(String, &mut dyn Flash), ApplyError> {
        if p.name != super::fixture::IMAGE {
            return Err(not_simulated(p));
        }
        Ok((format!("mtd:{}", p.name), &mut self.firmware))
    }

    fn ubi(&mut self, p: &Partition) -> Result<(String, &mut dyn Ubi), ApplyError> {
        Err(not_simulated(p))
    }
}
