//! Where things live on the device, relative to a root directory.
//!
//! Every command takes `--root DIR` (default `/`) so that the same code serves the running router,
//! an install from a recovery system (`--root /dest/@` on the Turris Omnia) and the tests' chroots.

use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct DeviceRoot {
    root: PathBuf,
}

impl DeviceRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DeviceRoot { root: root.into() }
    }

    pub fn is_live_system(&self) -> bool {
        self.root == Path::new("/")
    }

    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// `rel` below the root; `rel` is written as an absolute device path.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    pub fn store(&self) -> PathBuf {
        self.join("/nix/store")
    }

    /// The persist filesystem: `ROOT/persist` on a running device, or ROOT itself when the root
    /// is that filesystem (the Turris Omnia's btrfs `@` subvolume seen from a recovery system),
    /// the same rule as Liminix's `install` script.
    pub fn persist(&self) -> PathBuf {
        let p = self.join("/persist");
        if p.is_dir() {
            p
        } else {
            self.root.clone()
        }
    }

    pub fn generations(&self) -> PathBuf {
        self.persist().join("generations")
    }

    /// Where trust and board identity come from: the target's `/etc/liminix`, or, when the target
    /// has none yet (a fresh root being installed from a recovery system), the running system's.
    fn liminix_etc(&self) -> PathBuf {
        let own = self.join("/etc/liminix");
        if own.is_dir() {
            own
        } else {
            PathBuf::from("/etc/liminix")
        }
    }

    pub fn trusted_keys(&self) -> PathBuf {
        self.liminix_etc().join("trusted-keys")
    }

    pub fn board_file(&self) -> PathBuf {
        self.liminix_etc().join("board")
    }

    /// The live s6-rc database link (`s6-rc-init -d` resolved it, `s6-rc-update` repoints it).
    pub fn live_s6_db(&self) -> PathBuf {
        self.join("/run/s6-rc/compiled")
    }

    /// The database the active configuration's /etc points at.
    pub fn etc_s6_db(&self) -> PathBuf {
        self.join("/etc/s6-rc/compiled")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.join("/run/liminix")
    }

    /// Resolves a device path (possibly through symlinks, absolute ones meaning the device's root)
    /// to a host path, never leaving the root: `..` at the top stays at the top, as in a chroot.
    pub fn resolve(&self, device_path: &str) -> std::io::Result<PathBuf> {
        let mut resolved = PathBuf::from("/");
        let mut pending: Vec<String> = components(device_path);
        pending.reverse();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "." => {}
                ".." => {
                    resolved.pop();
                }
                _ => {
                    let candidate = resolved.join(&part);
                    let host = self.join(candidate.to_str().unwrap_or_default());
                    match std::fs::symlink_metadata(&host) {
                        Ok(m) if m.file_type().is_symlink() => {
                            hops += 1;
                            if hops > 40 {
                                return Err(std::io::Error::other(format!(
                                    "too many symlinks resolving {device_path}"
                                )));
                            }
                            let target = std::fs::read_link(&host)?;
                            let target = target.to_string_lossy().into_owned();
                            if target.starts_with('/') {
                                resolved = PathBuf::from("/");
                            }
                            let mut more = components(&target);
                            more.reverse();
                            pending.extend(more);
                        }
                        _ => resolved = candidate,
                    }
                }
            }
        }
        Ok(self.join(resolved.to_str().unwrap_or_default()))
    }

    /// The device path (as the device sees it) of a host path below the root.
    pub fn device_path(&self, host: &Path) -> Option<String> {
        let rel = host.strip_prefix(&self.root).ok()?;
        Some(format!("/{}", rel.to_str()?))
    }
}

fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolve_stays_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(dir.path());
        std::fs::create_dir_all(root.join("/nix/store/abc/bin")).unwrap();
        std::fs::write(root.join("/nix/store/abc/bin/x"), "x").unwrap();
        symlink("/nix/store/abc", root.join("/current")).unwrap();
        symlink("../../../../../../etc", root.join("/nix/store/escape")).unwrap();
        assert_eq!(
            root.resolve("/current/bin/x").unwrap(),
            root.join("/nix/store/abc/bin/x")
        );
        assert_eq!(
            root.resolve("/nix/store/escape/passwd").unwrap(),
            root.join("/etc/passwd")
        );
        assert_eq!(root.device_path(&root.join("/a/b")).unwrap(), "/a/b");
    }
}
