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
    // Resolved inside the root, and compared with the store resolved the same way: on a
    // device whose `/nix` is a link, both lead below where it points.
    let resolve = |host: &Path| {
        let device = root.device_path(host)?;
        root.resolve(&device).ok()
    };
    let (Some(db), Some(store)) = (resolve(&root.live_s6_db()), resolve(&root.store())) else {
        return Ok(Vec::new());
    };
    if !db.exists() {
        return Ok(Vec::new());
    }
    let Some(base) = db
        .strip_prefix(&store)
        .ok()
        .and_then(|r| r.components().next())
        .and_then(|c| c.as_os_str().to_str())
    else {
        return Ok(Vec::new());
    };
    let path = format!("{STORE}/{base}");
    // Damaged records count too: a system that runs must keep its paths whatever its record.
    Ok(gens
        .closures()?
        .into_iter()
        .filter(|(_, closure)| closure.contains(&path))
        .map(|(n, _)| n)
        .collect())
}

pub fn gc(root: &DeviceRoot, keep: usize, dry_run: bool) -> Result<GcPlan> {
    let store = Store::open_locked(root)?;
    let gens = Generations::new(root);
    gens.tidy()?;
    store.empty_trash()?;
    let scan = gens.scan()?;
    let Some(current) = gens.current() else {
        return Err(StateError::NoCurrent.into());
    };
    let good = |n: &u32| scan.good.iter().any(|g| g.number == *n);
    // A damaged generation is kept only while it is current (it is what boots); as the rollback
    // target or one of the newest it would be kept for nothing, since rollback skips it.
    let mut kept: BTreeSet<u32> = [current].into_iter().collect();
    kept.extend(gens.previous().filter(good));
    kept.extend(booted_generations(root, &gens)?);
    kept.extend(scan.good.iter().rev().take(keep).map(|g| g.number));
    let mut removed: Vec<u32> = scan
        .good
        .iter()
        .map(|g| g.number)
        .chain(scan.damaged.iter().map(|d| d.number))
        .filter(|n| !kept.contains(n))
        .collect();
    removed.sort_unstable();
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
