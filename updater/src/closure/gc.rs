//! Garbage collection: delete store paths that no kept generation references.
//!
//! Kept: the current generation, the rollback target, the generation the running system booted
//! (found through the live s6-rc database), and the N newest. A generation's record is removed
//! before any of its paths, and each path is renamed into the trash before it is deleted, so a crash
//! at any point leaves every kept generation whole.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use liminix_bundle::storepath::StorePath;
use serde::Serialize;

use crate::closure::generations::Generations;
use crate::closure::store::Store;
use crate::error::{Result, StateError};
use crate::root::{DeviceRoot, STORE};

#[derive(Debug, Serialize)]
pub struct GcPlan {
    pub kept_generations: Vec<u32>,
    pub removed_generations: Vec<u32>,
    pub deleted_paths: Vec<String>,
    pub freed_bytes: u64,
    pub dry_run: bool,
}

/// Generations whose closure contains the database the running s6-rc uses.
pub fn booted_generations(root: &DeviceRoot, gens: &Generations) -> Result<Vec<u32>> {
    let Ok(db) = fs::canonicalize(root.live_s6_db()) else {
        return Ok(Vec::new());
    };
    let Some(device) = root.device_path(&db) else {
        return Ok(Vec::new());
    };
    let Some(base) = device
        .strip_prefix(STORE)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.split('/').next())
    else {
        return Ok(Vec::new());
    };
    let path = format!("{STORE}/{base}");
    let mut out = Vec::new();
    for g in gens.list()? {
        if gens.closure(g.number)?.contains(&path) {
            out.push(g.number);
        }
    }
    Ok(out)
}

pub fn gc(root: &DeviceRoot, keep: usize, dry_run: bool) -> Result<GcPlan> {
    let store = Store::open_locked(root)?;
    let gens = Generations::new(root);
    gens.tidy()?;
    store.empty_trash()?;
    let all = gens.list()?;
    let Some(current) = gens.current() else {
        return Err(StateError::NoCurrent.into());
    };
    let mut kept: BTreeSet<u32> = [current].into_iter().collect();
    kept.extend(gens.previous());
    kept.extend(booted_generations(root, &gens)?);
    kept.extend(all.iter().rev().take(keep).map(|g| g.number));
    let removed: Vec<u32> = all
        .iter()
        .map(|g| g.number)
        .filter(|n| !kept.contains(n))
        .collect();
    let mut live: BTreeSet<String> = BTreeSet::new();
    for n in &kept {
        live.extend(gens.closure(*n)?);
    }
    let garbage: Vec<StorePath> = store
        .list()?
        .into_iter()
        .filter(|p| !live.contains(&p.to_string()))
        .collect();
    let freed_bytes = garbage.iter().map(|p| disk_usage(&store.path_of(p))).sum();
    if !dry_run {
        for n in &removed {
            gens.remove(*n)?;
        }
        for p in &garbage {
            store.delete(p)?;
        }
        store.empty_trash()?;
    }
    Ok(GcPlan {
        kept_generations: kept.into_iter().collect(),
        removed_generations: removed,
        deleted_paths: garbage.iter().map(|p| p.to_string()).collect(),
        freed_bytes,
        dry_run,
    })
}

/// Bytes of regular files and links below `path`, not following links.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| disk_usage(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}
