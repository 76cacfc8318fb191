//! The description both writers work from: every entry of the maintenance root by path, in
//! sorted order (a parent sorts before everything below it, and the order never depends on how
//! the tree was filled, which makes the archive reproducible).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::RecoveryError;

/// Where a file's bytes come from.
#[derive(Debug, Clone)]
pub enum Content {
    /// Made here (scripts, the banner, collected keys).
    Bytes(Vec<u8>),
    /// A file on this machine, copied when the root is written; `len` is its size when it was
    /// described, and a file that changed size meanwhile is refused.
    Host { path: PathBuf, len: u64 },
}

impl Content {
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Host { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        content: Content,
        mode: u32,
    },
    Symlink {
        target: String,
    },
    /// A character device node (`/dev/console`, which the kernel needs before /init runs).
    CharDev {
        major: u32,
        minor: u32,
        mode: u32,
    },
}

/// The maintenance root: relative paths (no leading `/`) to entries.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

/// Bytes a tmpfs spends on one entry besides its data pages (inode and dentry, rounded up).
const ENTRY_OVERHEAD: u64 = 1024;
/// tmpfs keeps file data in whole pages.
const PAGE: u64 = 4096;

/// `path` as a key: relative, every part a real name.
fn key(path: &str) -> Result<String, RecoveryError> {
    let rel = path.trim_start_matches('/');
    let ok = !rel.is_empty()
        && rel
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    match ok {
        true => Ok(rel.to_string()),
        false => Err(RecoveryError::BadPath {
            path: path.to_string(),
        }),
    }
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// A directory with `mode`, and its parents (0755) where missing.
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), RecoveryError> {
        let k = key(path)?;
        self.parents(&k);
        self.nodes.insert(k, Node::Dir { mode });
        Ok(())
    }

    /// A file made of `data`.
    pub fn bytes(&mut self, path: &str, data: Vec<u8>, mode: u32) -> Result<(), RecoveryError> {
        self.insert(
            path,
            Node::File {
                content: Content::Bytes(data),
                mode,
            },
        )
    }

    /// A copy of the file `host` (links followed), with `mode`.
    pub fn copy(&mut self, path: &str, host: &Path, mode: u32) -> Result<(), RecoveryError> {
        let meta = std::fs::metadata(host).map_err(RecoveryError::io("reading", host))?;
        let content = Content::Host {
            path: host.to_path_buf(),
            len: meta.len(),
        };
        self.insert(path, Node::File { content, mode })
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), RecoveryError> {
        let target = target.to_string();
        self.insert(path, Node::Symlink { target })
    }

    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32) -> Result<(), RecoveryError> {
        let node = Node::CharDev {
            major,
            minor,
            mode: 0o600,
        };
        self.insert(path, node)
    }

    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(path.trim_start_matches('/'))
    }

    /// Every entry, parents first, in byte order of the path.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// What the root takes in a tmpfs: each file's data in whole pages plus an inode and dentry
    /// per entry. It is what unpacking the initramfs or writing /run/maintenance costs, before
    /// the processes /init starts (their memory is the caller's margin).
    pub fn ram_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match n {
                Node::File { content, .. } => content.len().div_ceil(PAGE) * PAGE,
                _ => 0,
            })
            .fold(0u64, |sum, b| sum.saturating_add(b))
            .saturating_add(ENTRY_OVERHEAD.saturating_mul(self.nodes.len() as u64))
    }

    fn insert(&mut self, path: &str, node: Node) -> Result<(), RecoveryError> {
        let k = key(path)?;
        self.parents(&k);
        self.nodes.insert(k, node);
        Ok(())
    }

    fn parents(&mut self, k: &str) {
        let mut at = 0;
        while let Some(i) = k[at..].find('/') {
            let parent = &k[..at + i];
            self.nodes
                .entry(parent.to_string())
                .or_insert(Node::Dir { mode: 0o755 });
            at += i + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_bad_paths_are_refused() {
        let mut t = Tree::new();
        t.bytes("/a-c", vec![1], 0o644).unwrap();
        t.bytes("/a/b/c", vec![2; 5000], 0o644).unwrap();
        let names: Vec<&str> = t.entries().map(|(k, _)| k).collect();
        assert_eq!(names, ["a", "a-c", "a/b", "a/b/c"]);
        assert_eq!(t.ram_bytes(), 4096 + 8192 + 4 * 1024);
        for bad in ["", "/", "a/../b", "a//b", "./a"] {
            assert!(matches!(
                t.bytes(bad, vec![], 0o644),
                Err(RecoveryError::BadPath { .. })
            ));
        }
    }
}
