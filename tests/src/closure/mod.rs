//! Synthetic but realistic Liminix system closures, written into a store
//! root (`STORE_ROOT/nix/store/…`) as a Nix build would leave them.
//!
//! A closure is a set of input-addressed store paths named like real Liminix
//! packages, with code-like binaries that compress 2.5–4x, text, relative and
//! absolute symlinks, one `…-service-NAME` path per s6-rc service, an s6-rc
//! database path (`…-s6-rc-db`, with Liminix's `hashes` file) and the toplevel
//! `…-system-configuration-x86_64` (`bin/activate`, `bin/init`, `bin/install`,
//! `etc/nix-store-paths`). Generation is deterministic for a seed.
//!
//! The generator's recipe for each toplevel is kept beside the store, in
//! `STORE_ROOT/nix/var/mkclosure/<digest>.json` (as Nix keeps its database in
//! `/nix/var`), so [`derive`] and [`Closure::load`] work from a path alone.

mod catalog;
mod content;
mod layout;
mod model;
mod nix32;
mod rng;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use model::Model;

pub use nix32::is_store_path;
pub use write::on_disk;

#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generator manifest {path}: {source}")]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{0} was not made by this generator (no manifest in nix/var/mkclosure)")]
    NotGenerated(String),
    #[error("no service named {0:?} in the base closure")]
    UnknownService(String),
    #[error("{0:?} is not a valid store path name component")]
    InvalidName(String),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct ClosureSpec {
    pub seed: u64,
    /// Number of package store paths (at least the 8 core packages up to
    /// `s6-init-bin`); services, the database and the toplevel come on top.
    pub packages: usize,
    /// Approximate total size of the packages' files.
    pub total_bytes: u64,
    /// s6-rc services: `(name, restart-on-upgrade)`.
    pub services: Vec<(String, bool)>,
}

impl ClosureSpec {
    /// A small closure for functional tests: 12 packages, ~1.5 MB, 5 services.
    pub fn small(seed: u64) -> Self {
        ClosureSpec {
            seed,
            packages: 12,
            total_bytes: 1_500_000,
            services: default_services(),
        }
    }

    /// A router-sized closure for benchmarks: 300 paths, ~24 MB.
    pub fn router(seed: u64) -> Self {
        ClosureSpec {
            seed,
            packages: 300,
            total_bytes: 24_000_000,
            services: default_services(),
        }
    }
}

impl Default for ClosureSpec {
    fn default() -> Self {
        ClosureSpec::small(1)
    }
}

/// Services of a typical small router; `firewall` is restart-on-upgrade.
pub fn default_services() -> Vec<(String, bool)> {
    [
        ("hostapd-wlan0", false),
        ("dhcpc-wan", false),
        ("dnsmasq-lan", false),
        ("ntp", false),
        ("firewall", true),
    ]
    .into_iter()
    .map(|(n, f)| (n.to_string(), f))
    .collect()
}

/// A rebuild to derive from an existing closure.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// Fraction of the packages that get new store paths (roots with edited
    /// content plus the packages referencing them: Nix's rebuild cascade).
    pub changed_fraction: f64,
    /// Services whose own store path changes (a configuration edit).
    pub changed_services: Vec<String>,
    pub seed: u64,
}

/// A generated closure, as written under the store root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    /// `/nix/store/…-system-configuration-x86_64`.
    pub toplevel: String,
    /// Every store path of the closure, toplevel included, sorted.
    pub paths: Vec<String>,
    /// `/nix/store/…-s6-rc-db`, the compiled database the toplevel activates.
    pub db: String,
    /// Total size of the regular files in all of `paths`.
    pub bytes: u64,
    /// Service name → its `…-service-NAME` store path.
    pub services: BTreeMap<String, String>,
    /// Services marked restart-on-upgrade (`NAME force-restart` in `hashes`).
    pub force_restart: BTreeSet<String>,
}

impl Closure {
    /// The closure whose toplevel is `toplevel`, from the generator manifest.
    pub fn load(store_root: &Path, toplevel: &str) -> Result<Closure, ClosureError> {
        let model = load_model(store_root, toplevel)?;
        summarise(store_root, &model)
    }

    /// `paths` minus the toplevel: the content of `etc/nix-store-paths`.
    pub fn store_paths_file_entries(&self) -> Vec<String> {
        self.paths
            .iter()
            .filter(|p| **p != self.toplevel)
            .cloned()
            .collect()
    }

    /// The services Liminix's `--fast` restarts going from `old` to `new`:
    /// every old service whose `hashes` line differs, is missing, or says
    /// `force-restart`.
    pub fn restarts_between(old: &Closure, new: &Closure) -> BTreeSet<String> {
        old.services
            .iter()
            .filter(|(name, path)| {
                old.force_restart.contains(*name)
                    || new.force_restart.contains(*name)
                    || new.services.get(*name) != Some(path)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Generate the closure described by `spec` into `store_root`.
pub fn generate(store_root: &Path, spec: &ClosureSpec) -> Result<Closure, ClosureError> {
    let model = Model::from_spec(spec)?;
    materialise(store_root, &model)
}

/// A new generation of `base` (which must have been generated into `store_root`).
pub fn derive(store_root: &Path, base: &Closure, change: &Change) -> Result<Closure, ClosureError> {
    let model = load_model(store_root, &base.toplevel)?;
    let next = model.derive(
        change.changed_fraction,
        &change.changed_services,
        change.seed,
    )?;
    materialise(store_root, &next)
}

fn materialise(store_root: &Path, model: &Model) -> Result<Closure, ClosureError> {
    for p in &model.packages {
        write::store_path(store_root, &p.path, &layout::package(model, p))?;
    }
    for s in &model.services {
        write::store_path(store_root, &s.path, &layout::service(model, s))?;
    }
    write::store_path(store_root, &model.db, &layout::database(model))?;
    save_model(store_root, model)?;
    write::store_path(store_root, &model.toplevel, &layout::toplevel(model))?;
    summarise(store_root, model)
}

fn summarise(store_root: &Path, model: &Model) -> Result<Closure, ClosureError> {
    let mut paths = model.closure_paths_without_toplevel();
    paths.push(model.toplevel.clone());
    paths.sort();
    let mut bytes = 0;
    for p in &paths {
        bytes += write::tree_bytes(&on_disk(store_root, p))?;
    }
    Ok(Closure {
        toplevel: model.toplevel.clone(),
        paths,
        db: model.db.clone(),
        bytes,
        services: model
            .services
            .iter()
            .map(|s| (s.name.clone(), s.path.clone()))
            .collect(),
        force_restart: model
            .services
            .iter()
            .filter(|s| s.force_restart)
            .map(|s| s.name.clone())
            .collect(),
    })
}

fn manifest_path(store_root: &Path, toplevel: &str) -> PathBuf {
    let base = toplevel.trim_start_matches("/nix/store/");
    let digest = base.split('-').next().unwrap_or(base);
    store_root
        .join("nix/var/mkclosure")
        .join(format!("{digest}.json"))
}

fn save_model(store_root: &Path, model: &Model) -> Result<(), ClosureError> {
    let path = manifest_path(store_root, &model.toplevel);
    let dir = path.parent().expect("manifest has a parent");
    std::fs::create_dir_all(dir).map_err(|source| ClosureError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let json = serde_json::to_vec(model).map_err(|source| ClosureError::Manifest {
        path: path.clone(),
        source,
    })?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| ClosureError::Io {
            path: path.clone(),
            source,
        })
}

fn load_model(store_root: &Path, toplevel: &str) -> Result<Model, ClosureError> {
    let path = manifest_path(store_root, toplevel);
    let bytes =
        std::fs::read(&path).map_err(|_| ClosureError::NotGenerated(toplevel.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|source| ClosureError::Manifest { path, source })
}
