//! `rollback`: make another recorded generation current, in one atomic switch.

use crate::closure::generations::Generations;
use crate::closure::store::Store;
use crate::error::{AgentError, Result};
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
    let to = target.or(gens.previous()).ok_or_else(|| {
        AgentError::State(
            "no previous generation to roll back to (see `liminix-agent status`)".into(),
        )
    })?;
    if Some(to) == from {
        return Err(AgentError::State(format!(
            "generation {to} is already current"
        )));
    }
    let info = gens
        .info(to)
        .map_err(|_| AgentError::State(format!("there is no generation {to}")))?;
    let highest = gens.highest_epoch()?;
    if info.epoch < highest && !allow_downgrade {
        return Err(AgentError::Epoch {
            bundle: info.epoch,
            installed: highest,
        });
    }
    for p in gens.closure(to)? {
        let sp = liminix_bundle::storepath::StorePath::parse(&p)
            .map_err(|e| AgentError::State(format!("generation {to} lists {p:?}: {e}")))?;
        if !store.has(&sp) {
            return Err(AgentError::State(format!(
                "generation {to} is incomplete: {p} is missing from the store"
            )));
        }
    }
    gens.switch_to(to)?;
    Ok(RolledBack { from, to })
}
