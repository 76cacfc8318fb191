//! The closure of a Liminix system configuration, read the way Liminix records it.

use std::fs;
use std::path::{Path, PathBuf};

use liminix_bundle::storepath::StorePath;

#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    #[error("{0}")]
    StorePath(#[from] liminix_bundle::storepath::StorePathError),
    #[error("{path} is missing: is {toplevel} a Liminix system configuration (outputs.systemConfiguration)?")]
    NotAToplevel { toplevel: String, path: PathBuf },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{list} names {entry:?}, which is not a store path: {source}")]
    BadEntry {
        list: PathBuf,
        entry: String,
        source: liminix_bundle::storepath::StorePathError,
    },
    #[error("store path {0} is in the closure but not in the store at {1}")]
    Missing(String, PathBuf),
}

/// Host location of a store path under `store_root` (the directory holding `nix/store`).
pub fn host_path(store_root: &Path, p: &StorePath) -> PathBuf {
    store_root.join("nix/store").join(p.base_name())
}

/// Toplevel plus every path in its `etc/nix-store-paths`, sorted and unique, all present.
pub fn closure(store_root: &Path, toplevel: &str) -> Result<Vec<StorePath>, ClosureError> {
    let top = StorePath::parse(toplevel.trim_end_matches('/'))?;
    let list = host_path(store_root, &top).join("etc/nix-store-paths");
    if !list.exists() {
        return Err(ClosureError::NotAToplevel {
            toplevel: toplevel.into(),
            path: list,
        });
    }
    let text = fs::read_to_string(&list).map_err(|source| ClosureError::Io {
        path: list.clone(),
        source,
    })?;
    let mut paths = vec![top];
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let p = StorePath::parse(line).map_err(|source| ClosureError::BadEntry {
            list: list.clone(),
            entry: line.into(),
            source,
        })?;
        paths.push(p);
    }
    paths.sort_by_key(|p| p.to_string());
    paths.dedup();
    for p in &paths {
        let host = host_path(store_root, p);
        if fs::symlink_metadata(&host).is_err() {
            return Err(ClosureError::Missing(p.to_string(), host));
        }
    }
    Ok(paths)
}

/// Number of filesystem entries (files, directories, links) in a store path.
pub fn count_entries(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return 1;
    }
    1 + fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| count_entries(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}
