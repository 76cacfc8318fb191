//! The generator's description of a closure: packages, services and how they
//! reference each other. Store paths are input-addressed like Nix's: a path's
//! digest is a hash of its own recipe and its dependencies' paths, so a
//! rebuilt package gives new paths to everything that references it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::catalog::{self, Kind};
use super::nix32;
use super::rng::{fnv1a, Rng};
use super::{ClosureError, ClosureSpec};

/// Name of the toplevel store path (Liminix appends the target system).
pub const TOPLEVEL_NAME: &str = "system-configuration-x86_64";
pub const DB_NAME: &str = "s6-rc-db";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub kind: Kind,
    pub seed: u64,
    pub bytes: u64,
    /// Indices of earlier packages this one references.
    pub deps: Vec<usize>,
    /// One seed per rebuild with a source change (see `content::edit`).
    pub edits: Vec<u64>,
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub force_restart: bool,
    pub package: usize,
    pub edits: Vec<u64>,
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub seed: u64,
    pub packages: Vec<Package>,
    pub services: Vec<Service>,
    pub db: String,
    pub toplevel: String,
}

/// The smallest closure still has everything up to `s6-init-bin`.
fn min_packages() -> usize {
    catalog::CORE
        .iter()
        .position(|(n, ..)| *n == "s6-init-bin")
        .map_or(8, |i| i + 1)
}

impl Model {
    pub fn from_spec(spec: &ClosureSpec) -> Result<Model, ClosureError> {
        let n = spec.packages.max(min_packages());
        let entries: Vec<_> = (0..n).map(catalog::entry).collect();
        let weight_sum: u64 = entries.iter().map(|e| u64::from(e.2)).sum();
        let mut rng = Rng::new(spec.seed);
        let packages = entries
            .iter()
            .enumerate()
            .map(|(i, (name, kind, w))| Package {
                name: name.clone(),
                kind: *kind,
                seed: spec.seed ^ fnv1a(name.as_bytes()),
                bytes: (spec.total_bytes * u64::from(*w) / weight_sum).max(256),
                deps: pick_deps(&mut rng, &entries, i),
                edits: Vec::new(),
                path: String::new(),
            })
            .collect::<Vec<_>>();
        let services = spec
            .services
            .iter()
            .map(|(name, force)| new_service(&packages, name, *force, spec.seed))
            .collect::<Result<Vec<_>, _>>()?;
        let mut model = Model {
            seed: spec.seed,
            packages,
            services,
            db: String::new(),
            toplevel: String::new(),
        };
        model.assign_paths();
        Ok(model)
    }

    /// Recompute every store path from the recipes, in dependency order.
    pub fn assign_paths(&mut self) {
        for i in 0..self.packages.len() {
            let p = &self.packages[i];
            let mut inputs = format!(
                "pkg-v1\0{}\0{:?}\0{}\0{}\0{:?}",
                p.name, p.kind, p.seed, p.bytes, p.edits
            );
            for &d in &p.deps {
                inputs.push('\0');
                inputs.push_str(&self.packages[d].path);
            }
            self.packages[i].path = nix32::output_path(inputs.as_bytes(), &p.name);
        }
        for s in &mut self.services {
            let inputs = format!(
                "svc\0{}\0{}\0{:?}\0{}",
                s.name, s.force_restart, s.edits, self.packages[s.package].path
            );
            s.path = nix32::output_path(inputs.as_bytes(), &format!("service-{}", s.name));
        }
        self.db = nix32::output_path(format!("db\0{}", self.hashes()).as_bytes(), DB_NAME);
        let mut inputs = format!("toplevel\0{}", self.db);
        for p in self.closure_paths_without_toplevel() {
            inputs.push('\0');
            inputs.push_str(&p);
        }
        self.toplevel = nix32::output_path(inputs.as_bytes(), TOPLEVEL_NAME);
    }

    /// The s6-rc database's `hashes` file (Liminix `pkgs/s6-rc-database`).
    pub fn hashes(&self) -> String {
        let mut lines: Vec<String> = self
            .services
            .iter()
            .map(|s| {
                let v = if s.force_restart {
                    "force-restart"
                } else {
                    s.path.as_str()
                };
                format!("{} {v}\n", s.name)
            })
            .collect();
        lines.sort();
        lines.concat()
    }

    /// Sorted, like `etc/nix-store-paths`.
    pub fn closure_paths_without_toplevel(&self) -> Vec<String> {
        let mut v: Vec<String> = self.packages.iter().map(|p| p.path.clone()).collect();
        v.extend(self.services.iter().map(|s| s.path.clone()));
        v.push(self.db.clone());
        v.sort();
        v
    }

    pub fn package_named(&self, prefix: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name.starts_with(prefix))
    }

    /// A rebuild: roughly `fraction` of the packages get new paths (source
    /// edits plus the cascade through references), and the named services too.
    pub fn derive(
        &self,
        fraction: f64,
        services: &[String],
        seed: u64,
    ) -> Result<Model, ClosureError> {
        let mut next = self.clone();
        for root in self.pick_rebuild_roots(fraction, seed) {
            let p = &mut next.packages[root];
            p.edits.push(seed ^ fnv1a(p.name.as_bytes()));
        }
        for name in services {
            let s = next
                .services
                .iter_mut()
                .find(|s| &s.name == name)
                .ok_or_else(|| ClosureError::UnknownService(name.clone()))?;
            s.edits.push(seed ^ fnv1a(name.as_bytes()));
        }
        next.assign_paths();
        Ok(next)
    }

    /// Packages to edit so that the edited ones plus everything referencing
    /// them make up about `fraction` of all packages.
    fn pick_rebuild_roots(&self, fraction: f64, seed: u64) -> Vec<usize> {
        let n = self.packages.len();
        let target = (fraction.clamp(0.0, 1.0) * n as f64).round() as usize;
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = Rng::derive(seed, "rebuild-order");
        for i in (1..n).rev() {
            order.swap(i, rng.index(i + 1));
        }
        let (mut changed, mut roots) = (BTreeSet::new(), Vec::new());
        for c in order {
            if changed.len() >= target {
                break;
            }
            let cascade: BTreeSet<usize> =
                self.dependents(c).difference(&changed).copied().collect();
            if changed.len() + cascade.len() <= target {
                changed.extend(cascade);
                roots.push(c);
            }
        }
        roots
    }

    /// `p` and every package referencing it, directly or not.
    fn dependents(&self, p: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::from([p]);
        for (i, pkg) in self.packages.iter().enumerate().skip(p + 1) {
            if pkg.deps.iter().any(|d| out.contains(d)) {
                out.insert(i);
            }
        }
        out
    }
}

fn pick_deps(rng: &mut Rng, entries: &[(String, Kind, u32)], i: usize) -> Vec<usize> {
    let named = |prefix: &str| entries[..i].iter().position(|e| e.0.starts_with(prefix));
    let mut deps = BTreeSet::new();
    let kind = entries[i].1;
    let compiled = matches!(kind, Kind::Library | Kind::Program | Kind::Multicall);
    if compiled {
        deps.extend(named("musl-"));
    }
    match entries[i].0.as_str() {
        "s6-init-bin" => deps.extend(
            ["execline-", "s6-2", "s6-linux-init-", "busybox-"]
                .iter()
                .filter_map(|p| named(p)),
        ),
        _ if kind == Kind::Text => deps.extend(named("busybox-")),
        _ => {}
    }
    if i > 2 && matches!(kind, Kind::Program | Kind::Text) {
        for _ in 0..rng.below(3) {
            let d = rng.skewed(i);
            if !matches!(
                entries[d].1,
                Kind::Firmware | Kind::KernelModules | Kind::InitBin
            ) {
                deps.insert(d);
            }
        }
    }
    deps.into_iter().collect()
}

fn new_service(
    packages: &[Package],
    name: &str,
    force: bool,
    seed: u64,
) -> Result<Service, ClosureError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"+-._?=".contains(&c));
    if !valid {
        return Err(ClosureError::InvalidName(name.to_string()));
    }
    let wanted = catalog::package_for_service(name);
    let package = wanted
        .and_then(|w| packages.iter().position(|p| p.name.starts_with(w)))
        .unwrap_or_else(|| {
            let programs: Vec<usize> = (0..packages.len())
                .filter(|&i| packages[i].kind == Kind::Program)
                .collect();
            programs[(fnv1a(name.as_bytes()) ^ seed) as usize % programs.len()]
        });
    Ok(Service {
        name: name.to_string(),
        force_restart: force,
        package,
        edits: Vec::new(),
        path: String::new(),
    })
}
