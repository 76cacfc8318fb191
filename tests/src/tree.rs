//! Snapshots of a directory tree, for tests that must show a refused input left everything as it
//! was: every entry's path, type, permission bits and size, the SHA-256 of a file's contents and
//! the target of a link. Two snapshots are equal only when the trees are byte-identical.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Every entry below a directory (not the directory itself), by path relative to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<String, String>);

/// Snapshots `dir`; a missing `dir` is an empty snapshot, so that "not created" compares equal.
pub fn snapshot(dir: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    Snapshot(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd {
        let e = e.unwrap_or_else(|err| panic!("listing {}: {err}", dir.display()));
        let path = e.path();
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let meta = fs::symlink_metadata(&path)
            .unwrap_or_else(|err| panic!("stat {}: {err}", path.display()));
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        let what = if ft.is_symlink() {
            let target = fs::read_link(&path).expect("readlink");
            format!("link {mode:o} -> {}", target.display())
        } else if ft.is_dir() {
            walk(&path, &name, out);
            format!("dir {mode:o}")
        } else if ft.is_file() {
            let bytes = fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            format!(
                "file {mode:o} {} sha256:{}",
                meta.len(),
                hex::encode(Sha256::digest(&bytes))
            )
        } else if ft.is_fifo() || ft.is_socket() {
            format!("special {mode:o}")
        } else {
            format!("device {mode:o} {}", meta.len())
        };
        out.insert(name, what);
    }
}

impl Snapshot {
    /// What differs from `later`, one line per entry: `-` gone, `+` new, `~` changed.
    pub fn diff(&self, later: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (path, was) in &self.0 {
            match later.0.get(path) {
                None => out.push(format!("- {path} ({was})")),
                Some(now) if now != was => out.push(format!("~ {path}: {was} => {now}")),
                Some(_) => {}
            }
        }
        for (path, now) in &later.0 {
            if !self.0.contains_key(path) {
                out.push(format!("+ {path} ({now})"));
            }
        }
        out
    }

    /// Panics with the differences when `later` is not the same tree.
    pub fn assert_same(&self, later: &Snapshot, what: &str) {
        let diff = self.diff(later);
        assert!(
            diff.is_empty(),
            "{what} changed the tree:\n{}",
            diff.join("\n")
        );
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
