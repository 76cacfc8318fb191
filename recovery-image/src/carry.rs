//! What a root booted by a fresh kernel (levitate --kexec, a trial boot) needs from the running
//! system besides programs: the kernel modules it has loaded, and the board's flash set-up.
//!
//! Modules: a kernel that boots again with an initramfs has loaded nothing; the drivers of the
//! network card or the flash may be modules (Debian's kernels; some router kernels). The ones in
//! `ROOT/proc/modules` are carried from `ROOT/lib/modules/RELEASE` with everything
//! `modules.dep` says they need, with a `modules.dep` for exactly those and `/etc/modules`
//! naming them, which the new root's /init feeds to busybox `modprobe`.
//!
//! Flash set-up: where the kernel does not make the flash partitions by itself (a device tree
//! or `mtdparts=` does on the boards; the test guest adds them at run time with BLKPG), the
//! board ships [`FLASH_SETUP`], run by the new root's /init after the modules, and lists the
//! programs it runs, one absolute path a line, in [`FLASH_SETUP_NEEDS`]; they are carried with
//! their shared libraries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use liminix_bundle::resolve::resolve_below;

use crate::tree::Tree;
use crate::{libs, RecoveryError};

/// The board's flash set-up script, run once the modules are loaded.
pub const FLASH_SETUP: &str = "/etc/liminix/flash-setup";
/// The programs [`FLASH_SETUP`] runs besides busybox applets.
pub const FLASH_SETUP_NEEDS: &str = "/etc/liminix/flash-setup.needs";
/// The list of modules the new root's /init loads, in order.
pub const MODULE_LIST: &str = "/etc/modules";

/// What is carried: module files and the set-up script with its programs.
#[derive(Debug, Clone, Default)]
pub struct Carried {
    pub release: String,
    /// Module names to load, in the order `/proc/modules` had them, plus the extra ones.
    pub modules: Vec<String>,
    /// Path below `/lib/modules/RELEASE` → host file.
    pub module_files: BTreeMap<String, PathBuf>,
    /// `modules.dep` lines of the carried files.
    pub dep: String,
    /// Device path → host file: the set-up script, its programs and their libraries.
    pub setup_files: BTreeMap<String, PathBuf>,
}

/// Module names treat `-` and `_` alike; a path's name is its file name up to `.ko`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

/// Name → (path, dependency paths) from a `modules.dep` text.
fn parse_dep(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let (path, deps) = l.split_once(':')?;
            let deps = deps.split_whitespace().map(str::to_owned).collect();
            Some((module_name(path), (path.trim().to_owned(), deps)))
        })
        .collect()
}

/// The names in a `/proc/modules` text.
fn loaded(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.replace('-', "_"))
        .collect()
}

/// Describes what to carry from the system below `root` running kernel `release`: the loaded
/// modules and, where `modules.dep` has them, the `extra` ones (loop and squashfs for a trial;
/// absent ones are built in). A loaded module missing from `modules.dep` is refused: the new
/// root would lack a driver the running system uses.
pub fn from_system(root: &Path, release: &str, extra: &[&str]) -> Result<Carried, RecoveryError> {
    let mut c = Carried {
        release: release.to_owned(),
        ..Carried::default()
    };
    c.setup_files = setup_files(root)?;
    let proc_modules = root.join("proc/modules");
    let names = match std::fs::read_to_string(&proc_modules) {
        Ok(text) => loaded(&text),
        // A kernel without module support has no such file and nothing to carry.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(RecoveryError::io("reading", &proc_modules)(e)),
    };
    let base = format!("/lib/modules/{release}");
    let Some(dir) = resolve_below(root, &base).ok().filter(|d| d.is_dir()) else {
        return match names.is_empty() {
            true => Ok(c),
            false => Err(RecoveryError::NoModules {
                dir: root.join(base.trim_start_matches('/')),
                loaded: names.join(" "),
            }),
        };
    };
    let dep_path = dir.join("modules.dep");
    let text =
        std::fs::read_to_string(&dep_path).map_err(RecoveryError::io("reading", &dep_path))?;
    let deps = parse_dep(&text);
    let mut wanted = Vec::new();
    for n in &names {
        if !deps.contains_key(n) {
            return Err(RecoveryError::UnknownModule {
                module: n.clone(),
                dep: dep_path,
            });
        }
        wanted.push(n.clone());
    }
    for e in extra {
        let n = e.replace('-', "_");
        if deps.contains_key(&n) && !wanted.contains(&n) {
            wanted.push(n);
        }
    }
    let paths = closure(&deps, &wanted);
    for p in &paths {
        c.module_files.insert(p.clone(), dir.join(p));
    }
    c.dep = text
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(p, _)| paths.contains(p.trim()))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    // /proc/modules lists the newest first: load in the opposite order.
    wanted[..names.len()].reverse();
    c.modules = wanted;
    Ok(c)
}

/// The paths of `names` and of everything they depend on.
fn closure(deps: &BTreeMap<String, (String, Vec<String>)>, names: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut pending: Vec<String> = names
        .iter()
        .filter_map(|n| deps.get(n).map(|(p, _)| p.clone()))
        .collect();
    while let Some(p) = pending.pop() {
        if !out.insert(p.clone()) {
            continue;
        }
        if let Some((_, d)) = deps.get(&module_name(&p)) {
            pending.extend(d.iter().cloned());
        }
    }
    out
}

/// The board's set-up script and the programs its needs file names, with their libraries.
fn setup_files(root: &Path) -> Result<BTreeMap<String, PathBuf>, RecoveryError> {
    let mut files = BTreeMap::new();
    let Some(script) = resolve_below(root, FLASH_SETUP)
        .ok()
        .filter(|p| p.is_file())
    else {
        return Ok(files);
    };
    files.insert(FLASH_SETUP.to_owned(), script);
    let Some(needs) = resolve_below(root, FLASH_SETUP_NEEDS)
        .ok()
        .filter(|p| p.is_file())
    else {
        return Ok(files);
    };
    let text = std::fs::read_to_string(&needs).map_err(RecoveryError::io("reading", &needs))?;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let program = resolve_below(root, line)
            .ok()
            .filter(|p| p.is_file())
            .ok_or_else(|| RecoveryError::MissingProgram {
                program: line.to_owned(),
                needs: needs.clone(),
            })?;
        files.extend(libs::closure(root, &program)?);
        files.insert(line.to_owned(), program);
    }
    Ok(files)
}

impl Carried {
    /// Puts the modules, their list and the set-up files into `tree`.
    pub fn add_to(&self, tree: &mut Tree) -> Result<(), RecoveryError> {
        for (device, host) in &self.setup_files {
            tree.copy(device, host, 0o755)?;
        }
        if self.modules.is_empty() {
            return Ok(());
        }
        let base = format!("/lib/modules/{}", self.release);
        for (rel, host) in &self.module_files {
            tree.copy(&format!("{base}/{rel}"), host, 0o644)?;
        }
        tree.bytes(
            &format!("{base}/modules.dep"),
            self.dep.clone().into_bytes(),
            0o644,
        )?;
        let list: String = self.modules.iter().map(|m| format!("{m}\n")).collect();
        tree.bytes(MODULE_LIST, list.into_bytes(), 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_modules_come_with_their_dependencies_in_load_order() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let dir = root.join("lib/modules/6.1.0-x");
        std::fs::create_dir_all(dir.join("kernel")).unwrap();
        for m in ["virtio_net", "net_failover", "failover", "loop", "unused"] {
            std::fs::write(dir.join(format!("kernel/{m}.ko")), m).unwrap();
        }
        std::fs::write(
            dir.join("modules.dep"),
            "kernel/virtio_net.ko: kernel/net_failover.ko kernel/failover.ko\n\
             kernel/net_failover.ko: kernel/failover.ko\nkernel/failover.ko:\n\
             kernel/loop.ko:\nkernel/unused.ko:\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(
            root.join("proc/modules"),
            "virtio_net 1 0 - Live 0x0\nnet_failover 1 1 virtio_net, Live 0x0\n\
             failover 1 1 net_failover, Live 0x0\n",
        )
        .unwrap();
        let c = from_system(root, "6.1.0-x", &["loop", "squashfs"]).unwrap();
        assert_eq!(
            c.modules,
            ["failover", "net_failover", "virtio_net", "loop"]
        );
        assert_eq!(c.module_files.len(), 4);
        assert!(!c.dep.contains("unused"), "{}", c.dep);
        let mut tree = Tree::new();
        c.add_to(&mut tree).unwrap();
        assert!(tree.contains("lib/modules/6.1.0-x/kernel/failover.ko"));
        assert!(tree.contains("etc/modules"));

        std::fs::write(root.join("proc/modules"), "ramoops 1 0 - Live 0x0\n").unwrap();
        let e = from_system(root, "6.1.0-x", &[]).unwrap_err();
        assert!(e.to_string().contains("ramoops"), "{e}");
    }

    #[test]
    fn a_setup_script_brings_its_programs() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("etc/liminix")).unwrap();
        std::fs::write(root.join("etc/liminix/flash-setup"), "#!/bin/sh\n").unwrap();
        std::fs::write(
            root.join("etc/liminix/flash-setup.needs"),
            "/sbin/nothere\n",
        )
        .unwrap();
        let e = from_system(root, "r", &[]).unwrap_err();
        assert!(e.to_string().contains("/sbin/nothere"), "{e}");
        std::fs::write(root.join("etc/liminix/flash-setup.needs"), "").unwrap();
        let c = from_system(root, "r", &[]).unwrap();
        assert_eq!(c.setup_files.len(), 1);
        assert!(c.modules.is_empty());
    }
}
