//! Real U-Boot on `qemu-system-arm -M virt` (TCG) with its environment in the second pflash
//! bank and no operating system: tests write an environment into the bank file, boot, and
//! read what U-Boot printed on the serial console.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::assets::{self, BANK};
use super::{machine_args, QEMU_ARM, QEMU_ARM_PACKAGE};
use crate::qemu::{Launch, Stop};
use crate::VmError;

/// CONFIG_ENV_SIZE (and CONFIG_ENV_SECT_SIZE) of qemu_arm_defconfig.
pub const ENV_SIZE: usize = 0x40000;

/// Bank 0 holds U-Boot, bank 1 (`env`) starts erased and holds the environment.
pub struct PflashBed {
    dir: tempfile::TempDir,
    flash0: PathBuf,
    /// The environment bank (CONFIG_ENV_ADDR = its offset 0).
    pub env: PathBuf,
}

impl PflashBed {
    /// A bed running the U-Boot binary `uboot` (e.g. [`assets::UBOOT_QEMU_ARM`]).
    pub fn new(uboot: &Path) -> Result<Self, VmError> {
        crate::require_program(QEMU_ARM, QEMU_ARM_PACKAGE)?;
        let tmp = std::env::temp_dir();
        let dir = tempfile::tempdir().map_err(VmError::io(&tmp))?;
        let flash0 = dir.path().join("u-boot.img");
        assets::uboot_bank(uboot, &flash0)?;
        let env = dir.path().join("env.img");
        // an erased NOR bank
        std::fs::write(&env, vec![0xFFu8; BANK as usize]).map_err(VmError::io(&env))?;
        Ok(PflashBed { dir, flash0, env })
    }

    /// A scratch directory that lives as long as the bed.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Boots until `until` appears on the console (or 45 s pass), then stops QEMU.
    pub fn boot(&self, until: &str) -> String {
        self.boot_for(until, Duration::from_secs(45))
    }

    /// [`Self::boot`] with another time limit; the console so far when it runs out.
    pub fn boot_for(&self, until: &str, limit: Duration) -> String {
        let launch = Launch {
            program: QEMU_ARM,
            package: QEMU_ARM_PACKAGE,
            args: machine_args(&[&self.flash0, &self.env], 128),
            stop: Some(Stop::after(until, Duration::ZERO)),
            timeout: limit,
        };
        launch.run().unwrap_or_else(|e| panic!("{e}")).serial
    }
}
