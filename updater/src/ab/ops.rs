//! The agent's A/B operations on a device root: `apply`, the boot check behind `status`,
//! `mark-good` and `rollback`.

use std::path::PathBuf;
use std::time::Duration;

use liminix_flash::{FileImage, ImageSource};
use serde::Serialize;

use super::devices::{open_flow, open_target, OpenTarget, UbiAttach};
use super::flow::{BootFlow, FlowState};
use super::health;
use super::install::{
    check_sizes, install_slot, InstallReport, RootfsDev, SlotDevs, SlotImages, Verified,
};
use super::record::{self, Pending, Rollback};
use super::slot::{AbBoard, FlowConfig, Slot, Target};
use super::{AbError, ConfigError, LayoutError, RefusedError, VerifyError};
use crate::root::DeviceRoot;

/// What a staged image is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageRole {
    Kernel,
    Rootfs,
}

/// An image the caller extracted from a verified bundle, with the hash its signed
/// manifest gives.
#[derive(Debug, Clone)]
pub struct StagedImage {
    pub role: ImageRole,
    pub path: PathBuf,
    pub sha256: [u8; 32],
}

/// Caller's choices for `apply`.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The board the bundle was built for.
    pub bundle_board: String,
    /// Reboot into the new slot when done.
    pub reboot: bool,
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub from: Slot,
    pub to: Slot,
    pub install: InstallReport,
    /// The slot's UBI partition, when the agent attached it for the install (and
    /// detached it after).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ubi_attached: Option<UbiAttach>,
    pub rebooted: bool,
}

/// Seconds since the epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The running slot: `bootImage=` on Zyxel, `liminix.slot=` (set by `ab-boot.txt`) with
/// U-Boot environments.
pub fn booted_slot(root: &DeviceRoot, board: &AbBoard) -> Result<Slot, AbError> {
    let found = match &board.flow {
        FlowConfig::Zyxel { .. } => liminix_bootenv::zyxel::running_slot(root.dir())
            .map_err(AbError::boot("read the booted image"))?
            .map(|i| Slot::from_index(i as usize)),
        FlowConfig::UbootEnv { .. } => {
            let p = root.join("/proc/cmdline");
            let cmdline = std::fs::read_to_string(&p).unwrap_or_default();
            cmdline
                .split_whitespace()
                .filter_map(|w| w.strip_prefix("liminix.slot="))
                .filter_map(Slot::parse)
                .next_back()
        }
    };
    found.ok_or_else(|| ConfigError::UnknownBootedSlot.into())
}

fn verified((src, sha256): &(FileImage, [u8; 32])) -> Verified<'_> {
    Verified {
        src,
        sha256: *sha256,
    }
}

fn one_image(
    images: &[StagedImage],
    role: ImageRole,
) -> Result<Option<(FileImage, [u8; 32])>, AbError> {
    let mut it = images.iter().filter(|i| i.role == role);
    let Some(img) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(LayoutError::TwoImages(role).into());
    }
    let src = FileImage::new(&img.path).map_err(|e| AbError::io("open staged image", e))?;
    let got = src
        .sha256()
        .map_err(|e| AbError::io("read staged image", e))?;
    if got != img.sha256 {
        return Err(VerifyError::Staged {
            path: img.path.clone(),
            got,
            want: img.sha256,
        }
        .into());
    }
    Ok(Some((src, got)))
}

/// Verifies the images, writes the slot that is not running, makes it the one to try
/// next and (if asked) reboots. Nothing is written when the board, a hash or the
/// layout is wrong, or when the running slot is itself an unconfirmed trial; all of
/// that is checked before a device of the slot is opened (which may attach its UBI
/// partition, see [`super::SlotUbi`]).
pub fn apply(
    root: &DeviceRoot,
    board: &AbBoard,
    images: &[StagedImage],
    opts: &ApplyOptions,
) -> Result<ApplyReport, AbError> {
    if opts.bundle_board != board.board {
        return Err(AbError::WrongBoard {
            bundle: opts.bundle_board.clone(),
            device: board.board.clone(),
        });
    }
    let kernel = one_image(images, ImageRole::Kernel)?.ok_or(LayoutError::NoKernel)?;
    let rootfs = one_image(images, ImageRole::Rootfs)?;
    let imgs = SlotImages {
        kernel: verified(&kernel),
        rootfs: rootfs.as_ref().map(verified),
    };
    let from = booted_slot(root, board)?;
    let to = from.other();
    let layout = board.slot(to);
    check_sizes(to, layout, &imgs)?;
    check_own_targets(board, to)?;
    let mut flow = open_flow(root, board)?;
    let state = flow.state()?;
    if state.committed != from {
        return Err(RefusedError::Unconfirmed {
            running: from,
            committed: state.committed,
        }
        .into());
    }
    let mut kdev = open_target(root, &layout.kernel)?;
    let mut rdev = layout
        .rootfs
        .as_ref()
        .map(|t| open_target(root, t))
        .transpose()?;
    let durable = std::iter::once(&kdev)
        .chain(rdev.as_ref())
        .filter_map(flush_handle)
        .collect::<Result<Vec<_>, _>>()?;
    let devs = SlotDevs {
        kernel: raw_of(&mut kdev)?,
        rootfs: rdev.as_mut().map(rootfs_of),
        durable,
    };
    let install = install_slot(flow.as_mut(), to, layout, devs, &imgs)?;
    let ubi_attached = rdev.and_then(close_target);
    record::set_pending(
        root,
        &Pending {
            from,
            to,
            installed_at: now(),
            images: images.iter().map(|i| hex::encode(i.sha256)).collect(),
        },
    )?;
    if opts.reboot {
        crate::activate::reboot().map_err(|e| AbError::Reboot(Box::new(e)))?;
    }
    Ok(ApplyReport {
        from,
        to,
        install,
        ubi_attached,
        rebooted: opts.reboot,
    })
}

/// Refuses a layout whose slot `to` shares a target with the other (running) slot.
fn check_own_targets(board: &AbBoard, to: Slot) -> Result<(), AbError> {
    let targets = |s: Slot| {
        let l = board.slot(s);
        std::iter::once(&l.kernel).chain(l.rootfs.as_ref())
    };
    let running: Vec<&Target> = targets(to.other()).collect();
    match targets(to).find(|t| running.contains(t)) {
        Some(t) => Err(ConfigError::SharedTarget {
            slot: to,
            target: t.clone(),
        }
        .into()),
        None => Ok(()),
    }
}

fn raw_of(t: &mut OpenTarget) -> Result<&mut dyn liminix_flash::Flash, AbError> {
    match t {
        OpenTarget::Mtd(f) => Ok(f),
        OpenTarget::Block(f) => Ok(f),
        OpenTarget::Volume { .. } => Err(ConfigError::KernelOnVolume.into()),
    }
}

fn rootfs_of(t: &mut OpenTarget) -> RootfsDev<'_> {
    match t {
        OpenTarget::Mtd(f) => RootfsDev::Raw(f),
        OpenTarget::Block(f) => RootfsDev::Raw(f),
        OpenTarget::Volume { ubi, name, make } => RootfsDev::Volume {
            ubi: ubi.ubi(),
            name: name.clone(),
            make: *make,
        },
    }
}

fn flush_handle(t: &OpenTarget) -> Option<Result<std::fs::File, AbError>> {
    match t {
        OpenTarget::Block(f) => Some(
            f.flush_handle()
                .map_err(|e| AbError::io("open slot for flushing", e)),
        ),
        _ => None,
    }
}

/// Closes a target; a UBI device attached for the install is detached again.
fn close_target(t: OpenTarget) -> Option<UbiAttach> {
    match t {
        OpenTarget::Volume { ubi, .. } => ubi.close(),
        _ => None,
    }
}

/// Where a trial stands, as the running agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trial {
    /// No update pending.
    None,
    /// Installed; the next reset tries the new slot.
    WaitingForReboot,
    /// Running the new slot, not confirmed yet.
    Running,
    /// Running the new slot, confirmed.
    Confirmed,
    /// The new slot did not confirm; this (old) slot runs again.
    RolledBack,
}

/// The `ab` section of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct AbStatus {
    pub flow: &'static str,
    pub booted: Slot,
    pub state: FlowState,
    pub trial: Trial,
    pub pending: Option<Pending>,
    pub last_rollback: Option<Rollback>,
}

impl AbStatus {
    /// The human form.
    pub fn render(&self) -> String {
        let mut out = format!(
            "a/b ({}): booted slot {}, committed {}, next boot {}, trial: {:?}\n",
            self.flow,
            self.booted,
            self.state.committed,
            self.state.next_boot(),
            self.trial
        );
        for s in Slot::ALL.iter().filter(|s| self.state.is_failed(**s)) {
            out.push_str(&format!("  slot {s} is marked failed\n"));
        }
        if let Some(r) = &self.last_rollback {
            out.push_str(&format!(
                "  last rollback: slot {} did not confirm (installed at {}, detected at {}); \
                 {} pstore record(s) of the failed boot\n",
                r.failed,
                r.installed_at,
                r.detected_at,
                r.pstore.len()
            ));
        }
        out
    }
}

fn detect_rollback(
    root: &DeviceRoot,
    flow: &mut dyn BootFlow,
    p: &Pending,
) -> Result<Rollback, AbError> {
    let r = Rollback {
        failed: p.to,
        running: p.from,
        installed_at: p.installed_at,
        detected_at: now(),
        pstore: record::read_pstore(root),
    };
    record::set_rollback(root, &r)?;
    // Now kept in rollback.json; left in pstore they would be reported again with
    // the next rollback, which may not have crashed at all.
    record::drop_pstore(root, &r.pstore);
    flow.mark_bad(p.to)?;
    record::clear_pending(root)?;
    Ok(r)
}

/// Reads the boot-loader state and the pending record, and settles what they imply:
/// a trial found unconfirmed by the old slot is recorded as a rollback (with pstore)
/// and its slot marked bad; a confirmed trial's record is cleared.
pub fn check_boot(root: &DeviceRoot, board: &AbBoard) -> Result<AbStatus, AbError> {
    let booted = booted_slot(root, board)?;
    let mut flow = open_flow(root, board)?;
    let mut state = flow.state()?;
    let mut pending = record::pending(root)?;
    let mut trial = Trial::None;
    if let Some(p) = pending.clone() {
        let trying = matches!(state.trying, Some((s, left)) if s == p.to && left > 0);
        trial = if booted == p.to && state.committed == p.to {
            record::clear_pending(root)?;
            pending = None;
            Trial::Confirmed
        } else if booted == p.to {
            Trial::Running
        } else if trying {
            Trial::WaitingForReboot
        } else {
            detect_rollback(root, flow.as_mut(), &p)?;
            state = flow.state()?;
            pending = None;
            Trial::RolledBack
        };
    }
    Ok(AbStatus {
        flow: flow.name(),
        booted,
        state,
        trial,
        pending,
        last_rollback: record::last_rollback(root)?,
    })
}

/// The `ab` section for `status`: `None` on boards without A/B slots.
pub fn status_hook(root: &DeviceRoot) -> Option<Result<AbStatus, String>> {
    match super::load_board(root) {
        Ok(None) => None,
        Ok(Some(board)) => Some(check_boot(root, &board).map_err(|e| e.to_string())),
        Err(e) => Some(Err(e.to_string())),
    }
}

/// The `ab` section of `status` output: the A/B state, or why it could not be read.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AbSection {
    Ok(AbStatus),
    Error { error: String },
}

impl AbSection {
    /// For `status` (reads and settles the boot state); `None` on boards without slots.
    pub fn read(root: &DeviceRoot) -> Option<AbSection> {
        status_hook(root).map(|r| match r {
            Ok(s) => AbSection::Ok(s),
            Err(error) => AbSection::Error { error },
        })
    }

    /// The human form.
    pub fn render(&self) -> String {
        match self {
            AbSection::Ok(s) => s.render(),
            AbSection::Error { error } => format!("a/b: cannot read the slot state: {error}\n"),
        }
    }
}

/// What `mark-good` did.
#[derive(Debug, Clone, Serialize)]
pub struct MarkGood {
    pub slot: Slot,
    /// The slot was already the committed one (nothing written).
    pub already_good: bool,
    pub status: AbStatus,
}

/// Confirms the running slot once the health check passes within `deadline` (default
/// from the board, else 120 s). On failure nothing is written: the next reset falls
/// back.
pub fn mark_good(
    root: &DeviceRoot,
    board: &AbBoard,
    deadline: Option<Duration>,
) -> Result<MarkGood, AbError> {
    let slot = booted_slot(root, board)?;
    let state = open_flow(root, board)?.state()?;
    let on_trial = state.trying.is_some_and(|(s, _)| s == slot);
    let already_good = state.committed == slot && !on_trial;
    if !already_good {
        let d = deadline
            .or(board.health.deadline_secs.map(Duration::from_secs))
            .unwrap_or(health::DEFAULT_DEADLINE);
        health::wait_healthy(&board.health, d)?;
        open_flow(root, board)?.mark_good(slot)?;
    }
    Ok(MarkGood {
        slot,
        already_good,
        status: check_boot(root, board)?,
    })
}

/// Explicit rollback: cancels a pending trial, or else makes the other slot the
/// committed one (refused if it is marked failed, unless `force`).
pub fn rollback(root: &DeviceRoot, board: &AbBoard, force: bool) -> Result<(Slot, Slot), AbError> {
    let booted = booted_slot(root, board)?;
    let mut flow = open_flow(root, board)?;
    let state = flow.state()?;
    let pending_trial = state
        .trying
        .is_some_and(|(s, left)| s != booted && left > 0);
    let to = if pending_trial {
        booted
    } else {
        booted.other()
    };
    if to != booted && state.is_failed(to) && !force {
        return Err(RefusedError::Failed(to).into());
    }
    flow.set_committed(to)?;
    record::clear_pending(root)?;
    Ok((booted, to))
}
