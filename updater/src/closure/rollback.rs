//! `rollback`: make another recorded generation current, in one atomic switch.

use crate::closure::generations::{DamagedGeneration, Generations, Scan};
use crate::closure::store::Store;
use crate::error::{AgentError, Result, StateError};
use crate::root::DeviceRoot;

#[derive(Debug)]
pub struct RolledBack {
    pub from: Option<u32>,
    pub to: u32,
    /// The previous generation, passed over because its record is damaged.
    pub skipped: Option<DamagedGeneration>,
}

pub fn rollback(
    root: &DeviceRoot,
    target: Option<u32>,
    allow_downgrade: bool,
) -> Result<RolledBack> {
    let store = Store::open_locked(root)?;
    let gens = Generations::new(root);
    gens.tidy()?;
    let scan = gens.scan()?;
    let from = gens.current();
    let damaged = |n: u32| scan.damaged.iter().find(|d| d.number == n).cloned();
    let (to, skipped) = match target {
        Some(n) => (n, None),
        None => default_target(&scan, from, gens.previous())?,
    };
    if Some(to) == from {
        return Err(StateError::AlreadyCurrent(to).into());
    }
    if let Some(d) = damaged(to) {
        return Err(StateError::Damaged {
            number: d.number,
            problem: d.problem,
        }
        .into());
    }
    let info = gens.info(to).map_err(|e| StateError::NoGeneration {
        number: to,
        source: Box::new(e),
    })?;
    let highest = gens.highest_epoch()?;
    if info.epoch < highest && !allow_downgrade {
        return Err(AgentError::Epoch {
            bundle: info.epoch,
            installed: highest,
        });
    }
    for p in gens.closure(to)? {
        let sp = liminix_bundle::storepath::StorePath::parse(&p).map_err(|source| {
            StateError::BadListEntry {
                list: format!("generation {to}"),
                entry: p.clone(),
                source,
            }
        })?;
        if !store.has(&sp) {
            return Err(StateError::MissingPath {
                generation: to,
                path: p,
            }
            .into());
        }
    }
    gens.switch_to(to)?;
    Ok(RolledBack { from, to, skipped })
}

/// The previous generation, or when its record is damaged the newest whole one other than the
/// current; with the damaged previous one, to tell the user it was passed over.
fn default_target(
    scan: &Scan,
    current: Option<u32>,
    previous: Option<u32>,
) -> Result<(u32, Option<DamagedGeneration>)> {
    let previous = previous.ok_or(StateError::NoPrevious)?;
    let Some(d) = scan.damaged.iter().find(|d| d.number == previous) else {
        return Ok((previous, None));
    };
    scan.good
        .iter()
        .rev()
        .map(|g| g.number)
        .find(|n| Some(*n) != current)
        .map(|n| (n, Some(d.clone())))
        .ok_or_else(|| {
            StateError::NoWholeGeneration {
                previous,
                problem: d.problem.clone(),
            }
            .into()
        })
}
