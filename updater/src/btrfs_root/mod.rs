//! Installing a Liminix generation into the btrfs subvolume `@` of a board whose vendor system
//! lives there (the Turris Omnia's eMMC), from a recovery system, and going back.
//!
//! The order keeps the board bootable whenever it stops: the current `@` is first kept as a
//! read-only snapshot; the generation is received into a fresh subvolume beside it
//! ([`STAGING`]); only when that holds a complete generation and its boot files is it swapped
//! in for `@` by two renames. A journal on the filesystem itself ([`journal`]) records the
//! snapshot and the step, so the next run finishes a swap that was cut, or
//! `restore-snapshot` goes back. [`target`] finds and mounts the filesystem.

pub mod bootfiles;
pub mod journal;
pub mod restore;
pub mod steps;
pub mod swap;
pub mod target;

use std::path::PathBuf;

use liminix_bundle::wire::ErrorKind;

/// The subvolume the board boots.
pub const ACTIVE: &str = "@";
/// The new root while it is being received; swapped in for [`ACTIVE`] at the end.
pub const STAGING: &str = "@.liminix-new";
/// The old root between the two renames of a swap.
pub const OUTGOING: &str = "@.liminix-old";

#[derive(Debug, thiserror::Error)]
pub enum BtrfsRootError {
    #[error("no btrfs filesystem on any block device in {dir} (looked at: {looked})")]
    NoFilesystem { dir: PathBuf, looked: String },
    #[error("btrfs on more than one device ({found}): name the one to install on with --device")]
    Ambiguous { found: String },
    #[error("{device} holds no btrfs filesystem")]
    NotBtrfs { device: PathBuf },
    #[error("mounting {device} on {target}")]
    Mount {
        device: PathBuf,
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a subvolume: this filesystem has no `@` root to install into")]
    NoActive { path: PathBuf },
    #[error("no install is in progress on {dir}: run `liminix-agent btrfs-install prepare` first")]
    NoInstall { dir: PathBuf },
    #[error(
        "the new root {staging} holds no current generation: send it first (update.sh --root)"
    )]
    NotReceived { staging: PathBuf },
    #[error("generation {generation}'s closure holds no extlinux/extlinux.conf: U-Boot would find nothing to boot")]
    NoBootFiles { generation: u32 },
    #[error("generation {generation}'s closure holds extlinux/extlinux.conf in more than one store path ({paths})")]
    SeveralBootFiles { generation: u32, paths: String },
    #[error(
        "{path} is a directory, not the link to @/boot the boot loader follows: move it away first"
    )]
    BootInTheWay { path: PathBuf },
    #[error("there is no snapshot {name} in {dir} (snapshots: {known})")]
    NoSnapshot {
        name: String,
        dir: PathBuf,
        known: String,
    },
    #[error("{path} is not a valid install journal")]
    Journal {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the switch of {dir} stopped in a state no run leaves ({state}): check it by hand")]
    SwapState { dir: PathBuf, state: String },
    #[error(transparent)]
    Btrfs(#[from] liminix_btrfs::BtrfsError),
    #[error("setting {name} in the U-Boot environment ({config})")]
    BootEnv {
        name: String,
        config: PathBuf,
        #[source]
        source: liminix_bootenv::EnvError,
    },
}

impl BtrfsRootError {
    pub fn kind(&self) -> ErrorKind {
        use BtrfsRootError as E;
        match self {
            E::NoFilesystem { .. } | E::NotBtrfs { .. } | E::Mount { .. } => ErrorKind::Device,
            E::Ambiguous { .. } => ErrorKind::Usage,
            // Refusals: nothing was written.
            E::NoActive { .. } | E::NoSnapshot { .. } | E::BootInTheWay { .. } => {
                ErrorKind::Refused
            }
            E::NoInstall { .. } | E::NotReceived { .. } => ErrorKind::Refused,
            E::NoBootFiles { .. } | E::SeveralBootFiles { .. } => ErrorKind::Refused,
            E::Journal { .. } | E::SwapState { .. } => ErrorKind::State,
            E::Btrfs(_) => ErrorKind::Io,
            E::BootEnv { .. } => ErrorKind::BootLoader,
        }
    }
}
