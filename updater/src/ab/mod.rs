//! A/B slots with try-once boots and automatic rollback.
//!
//! `apply` writes the slot that is not running and makes it the one to try at the next
//! reset ([`install`]); the boot loader tries it once (Zyxel bootconfig) or a few times
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
mod ops;
pub mod record;
pub mod slot;
pub(crate) mod slot_ubi;
pub mod uboot;
pub mod zyxel;

#[cfg(test)]
mod tests;

pub use devices::{SlotUbi, UbiAttach};
pub use error::{
    AbError, AttachError, ConfigError, LayoutError, RefusedError, VerifyError, WriteError,
};
pub use flow::{BootFlow, FlowState};
pub use install::{
    install_slot, InstallReport, RootfsDev, SlotDevs, SlotImages, VolumeAction, VolumeSpec,
};
pub use ops::{
    apply, booted_slot, check_boot, mark_good, rollback, status_hook, AbSection, AbStatus,
    ApplyOptions, ApplyReport, ImageRole, MarkGood, StagedImage,
};
pub use slot::{load_board, AbBoard, FlowConfig, HealthConfig, Slot, SlotLayout, Target};
pub use uboot::UBootEnvFlow;
pub use zyxel::{BootconfigIo, FlashBootconfig, ZyxelFlow};
