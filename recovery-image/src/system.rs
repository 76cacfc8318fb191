//! The parts of a maintenance root taken from the running system, below its root directory
//! (`/` on the router; a `--root` in tests). Links are followed inside that root, as the
//! device follows them (Liminix's `/run/dropbear` points into its state directory).

use std::path::{Path, PathBuf};

use liminix_bundle::resolve::resolve_below;

use crate::network::Network;
use crate::root::{applets, Parts};
use crate::RecoveryError;

/// Where Liminix's dropbear keeps its host keys (a link to its state directory), then the
/// usual place of other systems.
pub const HOST_KEY_DIRS: &[&str] = &["/run/dropbear", "/etc/dropbear"];
/// Liminix's per-user key files (`-U /run/sshd/authorized_keys/%n`), then the home directories.
pub const AUTHORIZED_KEYS: &[&str] = &[
    "/run/sshd/authorized_keys/root",
    "/root/.ssh/authorized_keys",
    "/home/root/.ssh/authorized_keys",
    "/.ssh/authorized_keys",
];
/// Where a dropbear is looked for when none is given or running.
pub const DROPBEAR_PATHS: &[&str] = &[
    "/bin/dropbear",
    "/sbin/dropbear",
    "/usr/bin/dropbear",
    "/usr/sbin/dropbear",
];

/// What the caller may fix instead of what the system shows.
#[derive(Debug, Default, Clone)]
pub struct Choices {
    pub busybox: Option<PathBuf>,
    pub dropbear: Option<PathBuf>,
    /// Used instead of the captured network when set.
    pub network: Option<Network>,
}

/// The parts of the running system below `root`, with `agent` (normally `/proc/self/exe`).
pub fn parts(root: &Path, agent: &Path, choices: &Choices) -> Result<Parts, RecoveryError> {
    let busybox = match &choices.busybox {
        Some(b) => b.clone(),
        None => existing(root, "/bin/busybox")
            .ok_or_else(|| RecoveryError::NoBusybox(root.join("bin/busybox")))?,
    };
    let dropbear = match &choices.dropbear {
        Some(d) => d.clone(),
        None => find_dropbear(root)?,
    };
    let network = match &choices.network {
        Some(n) => n.clone(),
        None => Network::capture()?,
    };
    Ok(Parts {
        agent: agent.to_path_buf(),
        applets: applets(&busybox),
        busybox,
        dropbear,
        lib_root: root.to_path_buf(),
        host_keys: host_keys(root)?,
        authorized_keys: authorized_keys(root)?,
        network,
    })
}

/// The dropbear serving ssh now (its `/proc/PID/exe`, on the live system), else the first in
/// the usual directories below `root`.
fn find_dropbear(root: &Path) -> Result<PathBuf, RecoveryError> {
    if root == Path::new("/") {
        if let Some(exe) = running("dropbear") {
            return Ok(exe);
        }
    }
    DROPBEAR_PATHS
        .iter()
        .find_map(|p| existing(root, p))
        .ok_or_else(|| RecoveryError::NoDropbear {
            searched: format!("a running dropbear and {}", DROPBEAR_PATHS.join(", ")),
        })
}

/// The executable of a running process named `name`.
fn running(name: &str) -> Option<PathBuf> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (comm.trim_end() == name).then(|| std::fs::read_link(e.path().join("exe")).ok())?
    })
}

/// Every `dropbear_*_host_key` in the first host key directory that has any.
fn host_keys(root: &Path) -> Result<Vec<PathBuf>, RecoveryError> {
    for dir in HOST_KEY_DIRS {
        let Some(host) = resolve_below(root, dir).ok().filter(|p| p.is_dir()) else {
            continue;
        };
        let entries = std::fs::read_dir(&host).map_err(RecoveryError::io("reading", &host))?;
        let mut keys: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("dropbear_") && n.ends_with("_host_key")
            })
            .map(|e| e.path())
            .collect();
        if !keys.is_empty() {
            keys.sort();
            return Ok(keys);
        }
    }
    Ok(Vec::new())
}

/// Every authorized key root has on the running system, from every place dropbear reads.
fn authorized_keys(root: &Path) -> Result<Vec<u8>, RecoveryError> {
    let mut keys = Vec::new();
    for file in AUTHORIZED_KEYS {
        if let Some(host) = existing(root, file) {
            let mut text = std::fs::read(&host).map_err(RecoveryError::io("reading", &host))?;
            if !text.ends_with(b"\n") {
                text.push(b'\n');
            }
            keys.extend(text);
        }
    }
    match keys.iter().all(u8::is_ascii_whitespace) {
        true => Err(RecoveryError::NoAuthorizedKeys {
            searched: AUTHORIZED_KEYS.join(", "),
        }),
        false => Ok(keys),
    }
}

fn existing(root: &Path, device: &str) -> Option<PathBuf> {
    resolve_below(root, device).ok().filter(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn keys_are_found_through_liminix_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let state = root.join("persist/services/state/dropbear");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("dropbear_ed25519_host_key"), b"k").unwrap();
        std::fs::write(state.join("unrelated"), b"x").unwrap();
        std::fs::create_dir_all(root.join("run/sshd/authorized_keys")).unwrap();
        symlink(
            "/persist/services/state/dropbear",
            root.join("run/dropbear"),
        )
        .unwrap();
        std::fs::write(
            root.join("run/sshd/authorized_keys/root"),
            b"ssh-ed25519 AAAA a",
        )
        .unwrap();
        assert_eq!(
            host_keys(root).unwrap(),
            [root.join("persist/services/state/dropbear/dropbear_ed25519_host_key")]
        );
        assert_eq!(authorized_keys(root).unwrap(), b"ssh-ed25519 AAAA a\n");
        std::fs::remove_file(root.join("run/sshd/authorized_keys/root")).unwrap();
        let e = authorized_keys(root).unwrap_err();
        assert!(matches!(e, RecoveryError::NoAuthorizedKeys { .. }), "{e}");
    }
}
