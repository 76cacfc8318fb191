//! The closure of a Liminix system configuration, read the way Liminix records it.

use std::fs;
use std::path::{Path, PathBuf};

use liminix_bundle::storepath::StorePath;

#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    #[error(transparent)]
    StorePath(#[from] liminix_bundle::storepath::StorePathError),
    #[error("{path} is missing: is {toplevel} a Liminix system configuration (outputs.systemConfiguration)?")]
    NotAToplevel { toplevel: String, path: PathBuf },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{list} names {entry:?}, which is not a store path")]
    BadEntry {
        list: PathBuf,
        entry: String,
        source: liminix_bundle::storepath::StorePathError,
    },
    #[error("store path {0} is in the closure but not in the store at {1}")]
    Missing(String, PathBuf),
    /// The agent's words for the same refusal: every device would refuse this bundle after the
    /// whole transfer, so the packer refuses it before signing.
    #[error("the toplevel's {what} is not a file in the store (resolves to {})", resolved.display())]
    NotInStore {
        what: &'static str,
        resolved: PathBuf,
    },
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
    let mut paths = vec![top.clone()];
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
    for what in ["bin/activate", "etc/nix-store-paths"] {
        require_in_store(store_root, &top, what)?;
    }
    Ok(paths)
}

/// `TOPLEVEL/what` must resolve, as a device resolves it, to a regular file in the store.
fn require_in_store(
    store_root: &Path,
    top: &StorePath,
    what: &'static str,
) -> Result<(), ClosureError> {
    let device_path = format!("{top}/{what}");
    let resolved =
        liminix_bundle::resolve::resolve_below(store_root, &device_path).map_err(|source| {
            ClosureError::Io {
                path: store_root.join(device_path.trim_start_matches('/')),
                source,
            }
        })?;
    if resolved.starts_with(store_root.join("nix/store")) && resolved.is_file() {
        Ok(())
    } else {
        Err(ClosureError::NotInStore { what, resolved })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const TOP: &str = "/nix/store/3wlx5g1j0cgw2bq9hbs3wbkzrk8x6ph5-system-configuration-x86_64";
    const DEP: &str = "/nix/store/0c4ky3v7n7yrm8p3pg9hfw1mbsx8jxjz-activate";

    fn store_with_toplevel() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join(&TOP[1..]);
        fs::create_dir_all(top.join("etc")).unwrap();
        fs::create_dir_all(top.join("bin")).unwrap();
        fs::write(top.join("etc/nix-store-paths"), format!("{DEP}\n")).unwrap();
        let dep = dir.path().join(&DEP[1..]);
        fs::create_dir_all(dep.join("bin")).unwrap();
        fs::write(dep.join("bin/activate"), "#!/bin/sh\n").unwrap();
        dir
    }

    #[test]
    fn a_toplevel_without_activate_is_refused_in_the_agents_words() {
        let dir = store_with_toplevel();
        let e = closure(dir.path(), TOP).unwrap_err();
        let resolved = dir.path().join(&TOP[1..]).join("bin/activate");
        assert_eq!(
            e.to_string(),
            format!(
                "the toplevel's bin/activate is not a file in the store (resolves to {})",
                resolved.display()
            )
        );
    }

    #[test]
    fn activate_may_be_a_link_into_the_store_but_not_out_of_it() {
        let dir = store_with_toplevel();
        let activate = dir.path().join(&TOP[1..]).join("bin/activate");
        symlink(format!("{DEP}/bin/activate"), &activate).unwrap();
        assert_eq!(closure(dir.path(), TOP).unwrap().len(), 2);
        fs::remove_file(&activate).unwrap();
        // Absolute links mean the device's root; `..` stops there.
        fs::write(dir.path().join("activate"), "#!/bin/sh\n").unwrap();
        symlink("../../../../../../activate", &activate).unwrap();
        let e = closure(dir.path(), TOP).unwrap_err();
        assert!(
            matches!(&e, ClosureError::NotInStore { resolved, .. } if *resolved == dir.path().join("activate")),
            "{e}"
        );
    }
}
