//! A/B slots with try-once boots and automatic rollback.
//!
//! [`install`] writes the slot that is not running and makes it the one to try at the next
//! reset; the boot loader tries it once (Zyxel bootconfig) or a few times
//! (U-Boot environment and `ab-boot.txt`). In the new system `liminix-agent mark-good`
//! confirms it after a health check ([`health`]); if that never happens the next reset
//! returns to the old slot, whose agent finds the unconfirmed trial, records the
//! rollback with the pstore log of the failed boot, and marks the slot bad.
//!
//! The boot loaders are behind the [`BootFlow`] trait ([`ZyxelFlow`], [`UBootEnvFlow`]);
//! the slot writers behind liminix-flash's `Flash`/`Ubi` traits, so the power-cut
//! enumerations in `tests` run the code the device runs. See docs/ab.md.

pub mod devices;
mod error;
pub mod flow;
pub mod health;
pub mod install;
mod mark_good;
pub mod record;
mod rollback;
pub mod slot;
pub(crate) mod slot_ubi;
pub mod status;
pub mod uboot;
mod volume;
pub mod zyxel;

#[cfg(test)]
mod tests;

pub use devices::{SlotUbi, UbiAttach};
pub use error::{
    AbError, AttachError, ConfigError, LayoutError, RefusedError, VerifyError, WriteError,
};
pub use flow::{BootFlow, FlowState};
pub use install::{
    install, install_slot, ImageRole, InstallOptions, InstallReport, InstallSummary, RootfsDev,
    SlotDevs, SlotImages, StagedImage, VolumeAction, VolumeSpec,
};
pub use mark_good::{mark_good, MarkGood};
pub use rollback::rollback;
pub use slot::{load_slot_layout, FlowConfig, HealthConfig, Slot, SlotLayout, SlotTargets, Target};
pub use status::{booted_slot, check_boot, status_hook, AbSection, AbStatus};
pub use uboot::UBootEnvFlow;
pub use zyxel::ZyxelFlow;
