//! The A/B state as the running agent sees it: which slot booted, where a trial stands, and
//! the `ab` section of `status`. Reading it settles what the boot loader did meanwhile: a trial
//! the old slot finds unconfirmed is recorded as a rollback (with the pstore log of the failed
//! boot) and its slot marked failed.

use serde::Serialize;

use super::devices::open_flow;
use super::flow::{BootFlow, FlowState};
use super::record::{self, Pending, Rollback};
use super::slot::{FlowConfig, Slot, SlotLayout};
use super::{AbError, ConfigError};
use crate::root::DeviceRoot;

/// The running slot: `bootImage=` on Zyxel, `liminix.slot=` (set by `ab-boot.txt`) with
/// U-Boot environments.
pub fn booted_slot(root: &DeviceRoot, board: &SlotLayout) -> Result<Slot, AbError> {
    let found = match &board.flow {
        FlowConfig::Zyxel { .. } => liminix_bootenv::zyxel::running_slot(root.dir())
            .map_err(AbError::boot("read the booted image"))?
            .map(|i| Slot::from_index(i as usize)),
        FlowConfig::UbootEnv { .. } => {
            let p = root.cmdline();
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
        detected_at: crate::now(),
        pstore: record::read_pstore(root),
    };
    record::set_rollback(root, &r)?;
    crate::steplog::log(
        root,
        &format!("ab: slot {} did not confirm, back on {}", p.to, p.from),
    );
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
pub fn check_boot(root: &DeviceRoot, board: &SlotLayout) -> Result<AbStatus, AbError> {
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
    match super::load_slot_layout(root) {
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
