//! Paths of a device tree that is not the running system (a `--root`, a build host's store
//! root) resolved as the device itself would resolve them. The packer and the agent both check a
//! toplevel's `bin/activate` this way, so they agree on what a device will accept.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Links followed before giving up, as the kernel's `ELOOP` limit.
const MAX_HOPS: u32 = 40;

/// `device_path` resolved below `root`: every link followed, an absolute target meaning `root`
/// (as after a chroot), and `..` at the top staying at the top, so the result never leaves
/// `root`. Components that do not exist yet are kept as they are.
pub fn resolve_below(root: &Path, device_path: &str) -> io::Result<PathBuf> {
    let mut resolved = PathBuf::from("/");
    let mut pending = components(device_path);
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "." => {}
            ".." => {
                resolved.pop();
            }
            _ => {
                let candidate = resolved.join(&part);
                let Ok(target) = fs::read_link(below(root, &candidate)) else {
                    resolved = candidate;
                    continue;
                };
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(io::Error::other(format!(
                        "too many symlinks resolving {device_path}"
                    )));
                }
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    resolved = PathBuf::from("/");
                }
                pending.extend(components(&target));
            }
        }
    }
    Ok(below(root, &resolved))
}

fn below(root: &Path, device_path: &Path) -> PathBuf {
    root.join(device_path.strip_prefix("/").unwrap_or(device_path))
}

/// The path's components, last first (a stack to pop).
fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("persist/nix/store/abc/bin")).unwrap();
        symlink("/persist/nix", root.join("nix")).unwrap();
        symlink(
            "../../../../../../etc",
            root.join("persist/nix/store/escape"),
        )
        .unwrap();
        assert_eq!(
            resolve_below(root, "/nix/store/abc/bin/x").unwrap(),
            root.join("persist/nix/store/abc/bin/x")
        );
        assert_eq!(
            resolve_below(root, "/nix/store/escape/passwd").unwrap(),
            root.join("etc/passwd")
        );
        symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_below(root, "/loop/x").is_err());
    }
}
