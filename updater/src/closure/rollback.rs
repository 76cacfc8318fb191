//! `rollback`: make another recorded generation current, in one atomic switch.

use crate::closure::generations::Generations;
use crate::closure::store::Store;
use crate::error::{AgentError, Result, StateError};
use crate::root::DeviceRoot;

pub struct RolledBack {
    pub from: Option<u32>,
    pub to: u32,
}

pub fn rollback(
    root: &DeviceRoot,
    target: Option<u32>,
    allow_downgrade: bool,
) -> Result<RolledBack> {
    let store = Store::open_locked(root)?;
    let gens = Generations::new(root);
    gens.tidy()?;
    let from = gens.current();
    let to = target
        .or(gens.previous())
        .ok_or_else(|| AgentError::State(StateError::NoPrevious))?;
    if Some(to) == from {
        return Err(StateError::AlreadyCurrent(to).into());
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
    Ok(RolledBack { from, to })
}
