//! Mounts below a device root, so they can be undone before removal.

use std::path::{Path, PathBuf};

use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

use super::DeviceError;

/// Mount points at or below `dir`, deepest first. `/proc/self/mountinfo`
/// escapes spaces and other bytes as `\ooo` octal.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(
                    d.iter()
                        .fold(0u8, |acc, c| acc.wrapping_mul(8) + (c - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detach everything mounted at or below `dir` (stacked mounts included).
pub fn unmount_below(dir: &Path) {
    for _ in 0..8 {
        let found = mounts_below(dir);
        if found.is_empty() {
            return;
        }
        for m in found {
            let _ = unmount(&m, UnmountFlags::DETACH);
        }
    }
}

pub fn mount_tmpfs(target: &Path, size_bytes: u64) -> Result<(), DeviceError> {
    let data = std::ffi::CString::new(format!("size={size_bytes},mode=0755"))
        .expect("mount options have no NUL");
    mount(
        "tmpfs",
        target,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(data.as_c_str()),
    )
    .map_err(|e| DeviceError::Io {
        path: target.to_path_buf(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescapes_octal() {
        assert_eq!(super::unescape(r"/a\040b"), "/a b");
        assert_eq!(super::unescape(r"/plain"), "/plain");
    }
}
