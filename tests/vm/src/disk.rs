//! Raw disk images for guests' virtio disks (block2mtd over them survives a VM kill).

use std::path::{Path, PathBuf};

/// A sparse raw disk image in the temporary directory, removed when dropped.
#[derive(Debug)]
pub struct Disk(PathBuf);

impl Disk {
    /// A zero-filled image of `bytes`; `tag` and the process id make the name unique.
    pub fn new(tag: &str, bytes: u64) -> Self {
        let p = std::env::temp_dir().join(format!("liminix-{tag}-{}.img", std::process::id()));
        std::fs::File::create(&p)
            .and_then(|f| f.set_len(bytes))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        Disk(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Disk {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
