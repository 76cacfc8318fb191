//! Failures of the A/B strategy, grouped by what the user must do about them; each group keeps
//! the slot, image, device and cause it concerns.

use std::path::{Path, PathBuf};

use liminix_bundle::wire::ErrorKind;
use liminix_flash::raw::RawError;
use liminix_flash::ubi_update::VolumeWriteError;

use super::{ImageRole, Slot, Target};

/// Failures of the A/B strategy.
#[derive(Debug, thiserror::Error)]
pub enum AbError {
    /// The A/B description or the device layout is wrong.
    #[error("A/B configuration: {0}")]
    Config(#[from] ConfigError),
    /// The bundle is for another board.
    #[error("bundle is for board {bundle:?} but this device is {device:?}")]
    WrongBoard { bundle: String, device: String },
    /// The images do not fit the slot layout (nothing was written).
    #[error("slot layout: {0}")]
    Layout(#[from] LayoutError),
    /// An image does not match its manifest hash, or flash does not read back as written.
    #[error("verification failed: {0}")]
    Verify(#[from] VerifyError),
    /// The state does not allow the operation.
    #[error("refused: {0}")]
    Refused(#[from] RefusedError),
    /// The inactive slot's UBI partition cannot be attached (nothing was written).
    #[error("partition {partition} (mtd{mtd}) has no UBI device attached and cannot be attached: {reason}")]
    Attach {
        partition: String,
        mtd: u32,
        #[source]
        reason: AttachError,
    },
    /// Writing a slot failed.
    #[error("writing the slot: {0}")]
    Write(#[from] WriteError),
    /// The boot loader state could not be read or written.
    #[error("{what}: {source}")]
    Boot {
        what: &'static str,
        #[source]
        source: liminix_bootenv::EnvError,
    },
    /// The health check did not pass in time.
    #[error("health check failed: {why} (gave up after {waited_secs} s)")]
    Unhealthy {
        #[source]
        why: super::health::HealthError,
        waited_secs: u64,
    },
    /// The slot is installed but the reboot into it failed.
    #[error("reboot: {0}")]
    Reboot(#[source] Box<crate::error::AgentError>),
    /// A record file of the A/B state cannot be read or written.
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Some other I/O failure.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why a slot's UBI partition cannot be attached, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("{0}; is UBI in the kernel (CONFIG_MTD_UBI, or `modprobe ubi`)?")]
    NoUbi(#[source] liminix_ubi::UbiError),
    #[error("{source}; {}", format_hint(*mtd))]
    Refused {
        mtd: u32,
        #[source]
        source: liminix_ubi::UbiError,
    },
    #[error("{count} of its erase blocks (from block {first}) hold data that is neither UBI nor erased; {}", format_hint(*mtd))]
    Foreign { mtd: u32, count: usize, first: u64 },
}

fn format_hint(mtd: u32) -> String {
    format!(
        "if what it holds is not needed (the vendor firmware, say), UBI-format it: \
         `ubiformat /dev/mtd{mtd}` erases it; then apply again. Nothing was written"
    )
}

/// What is wrong with the A/B description of the device.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("board {board}: {source}")]
    Board {
        board: String,
        #[source]
        source: Box<crate::apply::ApplyError>,
    },
    #[error("{spec}: {source}")]
    Partition {
        spec: String,
        #[source]
        source: liminix_mtd::MtdError,
    },
    #[error("the kernel command line does not say which slot was booted")]
    UnknownBootedSlot,
    #[error("slot {slot} shares {target:?} with the running slot {}", slot.other())]
    SharedTarget { slot: Slot, target: Target },
    #[error("a kernel must go to a raw partition, not a UBI volume")]
    KernelOnVolume,
    #[error("boot attempts must be 1..=9, not {0}")]
    Attempts(u8),
}

/// Why the images do not fit the slot (checked before anything is written).
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("more than one {0:?} image")]
    TwoImages(ImageRole),
    #[error("the bundle has no kernel image")]
    NoKernel,
    #[error("{what} image of {len} bytes does not fit slot {slot} ({max} bytes)")]
    TooLarge {
        what: &'static str,
        slot: Slot,
        len: u64,
        max: u64,
    },
    #[error("slot {0} has a root filesystem but the bundle carries no rootfs image")]
    NoRootfsImage(Slot),
    #[error("the bundle carries a rootfs image but slot {0} has no root filesystem target")]
    NoRootfsTarget(Slot),
    #[error("{what}: {source}")]
    DoesNotFit {
        what: &'static str,
        #[source]
        source: RawError,
    },
    #[error("rootfs image of {len} bytes does not fit slot {slot} (UBI volume {volume} can have {max} bytes){}", others_hint(others))]
    VolumeTooLarge {
        slot: Slot,
        volume: String,
        len: u64,
        max: u64,
        others: Vec<String>,
    },
    #[error("UBI volume {volume} of slot {slot} is to have {size} bytes but its UBI device has room for {room}{}", others_hint(others))]
    NoRoom {
        slot: Slot,
        volume: String,
        size: u64,
        room: u64,
        others: Vec<String>,
    },
    #[error(
        "slot {slot} has no UBI volume {volume:?} (and its layout does not let the agent make one)"
    )]
    NoVolume { slot: Slot, volume: String },
}

/// The advice when other volumes take the room a slot's volume needs.
fn others_hint(others: &[String]) -> String {
    if others.is_empty() {
        return String::new();
    }
    format!(
        "; the device also holds {}: if they are not needed (a vendor firmware's, say), \
         UBI-format the slot's partition (`ubiformat`) and apply again",
        others.join(", ")
    )
}

/// An image that is not what the manifest promised, or flash that does not hold what was written.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{} hashes to {} but the manifest says {}", path.display(), hex::encode(got), hex::encode(want))]
    Staged {
        path: PathBuf,
        got: [u8; 32],
        want: [u8; 32],
    },
    #[error("the {what} image: {source}")]
    Scan {
        what: &'static str,
        #[source]
        source: RawError,
    },
    #[error(
        "the {what} image hashes to {} now but was verified as {}",
        hex::encode(got),
        hex::encode(want)
    )]
    Changed {
        what: &'static str,
        got: [u8; 32],
        want: [u8; 32],
    },
    #[error("UBI volume {0} does not read back as the image")]
    VolumeReadBack(String),
}

/// States of the slots that forbid the operation.
#[derive(Debug, thiserror::Error)]
pub enum RefusedError {
    #[error(
        "slot {0} is marked failed (its last trial did not confirm); use --force to boot it anyway"
    )]
    Failed(Slot),
    #[error("the running slot {running} is not confirmed (the boot loader falls back to {committed}); run `liminix-agent mark-good` or reboot first")]
    Unconfirmed { running: Slot, committed: Slot },
    #[error("UBI volume {volume} of ubi{ubi} is mounted at {at}, so it is not the inactive slot's to write (does the slot layout name the running slot's partition?)")]
    Mounted {
        volume: String,
        ubi: u32,
        at: String,
    },
    #[error("slot {0} is the active image in the bootconfig; it cannot be overwritten")]
    ActiveImage(Slot),
    #[error("slot {0} is the committed slot ({var}); it cannot be overwritten", var = super::uboot::VAR_BOOT)]
    Committed(Slot),
}

/// A write into the slot that failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{what}: {source}")]
    Raw {
        what: &'static str,
        #[source]
        source: RawError,
    },
    #[error("rootfs volume {volume}: {source}")]
    Volume {
        volume: String,
        #[source]
        source: VolumeWriteError,
    },
}

impl AbError {
    pub(super) fn boot(what: &'static str) -> impl FnOnce(liminix_bootenv::EnvError) -> AbError {
        move |source| AbError::Boot { what, source }
    }

    pub(super) fn io(
        what: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> AbError {
        AbError::Io {
            what,
            source: Box::new(e),
        }
    }

    pub(super) fn file<'a>(
        what: &'static str,
        path: &'a Path,
    ) -> impl Fn(std::io::Error) -> AbError + Copy + 'a {
        move |source| AbError::File {
            what,
            path: path.to_owned(),
            source,
        }
    }

    /// The wire kind, which decides the exit code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AbError::Config(_) => ErrorKind::Config,
            AbError::WrongBoard { .. } => ErrorKind::WrongBoard,
            AbError::Layout(_) => ErrorKind::Layout,
            AbError::Verify(VerifyError::VolumeReadBack(_)) => ErrorKind::Verify,
            AbError::Verify(_) => ErrorKind::Payload,
            AbError::Refused(_) => ErrorKind::Refused,
            AbError::Attach { .. } => ErrorKind::Device,
            AbError::Write(_) => ErrorKind::Flash,
            AbError::Boot { .. } => ErrorKind::BootLoader,
            AbError::Unhealthy { .. } => ErrorKind::Unhealthy,
            AbError::Reboot(_) => ErrorKind::Activation,
            AbError::File { .. } | AbError::Io { .. } => ErrorKind::Io,
        }
    }
}
