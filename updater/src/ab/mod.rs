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
pub use flow::{BootFlow, FlowState};
pub use install::{
    install, install_slot, ImageRole, InstallOptions, InstallReport, InstallSummary, RootfsDev,
    SlotDevs, SlotImages, StagedImage, VolumeAction, VolumeSpec,
};
pub use mark_good::{mark_good, MarkGood};
pub use rollback::rollback;
pub use slot::{load_board, AbBoard, FlowConfig, HealthConfig, Slot, SlotLayout, Target};
pub use status::{booted_slot, check_boot, status_hook, AbSection, AbStatus};
pub use uboot::UBootEnvFlow;
pub use zyxel::{BootconfigIo, ZyxelFlow};

use crate::error::AgentError;

/// Failures of the A/B strategy.
#[derive(Debug, thiserror::Error)]
pub enum AbError {
    /// The slot layout or the device layout is wrong.
    #[error("A/B configuration: {0}")]
    Config(String),
    /// The bundle is for another board.
    #[error("bundle is for board {bundle:?} but this device is {device:?}")]
    WrongBoard { bundle: String, device: String },
    /// The images do not fit the slot layout (nothing was written).
    #[error("slot layout: {0}")]
    Layout(String),
    /// A staged image does not match its manifest hash (nothing was written).
    #[error("verification failed: {0}")]
    Verify(String),
    /// The state does not allow the operation.
    #[error("refused: {0}")]
    Refused(String),
    /// The inactive slot's UBI partition cannot be attached (nothing was written).
    #[error("partition {partition} (mtd{mtd}) has no UBI device attached and cannot be attached: {detail}")]
    Attach {
        partition: String,
        mtd: u32,
        detail: String,
    },
    /// Writing a slot failed.
    #[error("writing the slot: {0}")]
    Write(String),
    /// The boot loader state could not be read or written.
    #[error("{what}: {source}")]
    Boot {
        what: String,
        #[source]
        source: liminix_bootenv::EnvError,
    },
    /// The health check did not pass in time.
    #[error("health check failed: {0}")]
    Unhealthy(String),
    /// Some other I/O failure.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl AbError {
    fn boot(what: &str) -> impl FnOnce(liminix_bootenv::EnvError) -> AbError + '_ {
        move |source| AbError::Boot {
            what: what.to_string(),
            source,
        }
    }

    fn io(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> AbError {
        AbError::Io {
            what: what.to_string(),
            source: Box::new(e),
        }
    }
}

impl From<AbError> for AgentError {
    fn from(e: AbError) -> Self {
        match e {
            AbError::WrongBoard { bundle, device } => AgentError::WrongBoard {
                bundle,
                device,
                file: crate::root::SLOT_LAYOUT.into(),
            },
            AbError::Verify(detail) => AgentError::Payload {
                path: "slot image".into(),
                detail,
            },
            other => AgentError::State(other.to_string()),
        }
    }
}
