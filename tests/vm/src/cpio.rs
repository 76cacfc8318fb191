//! A minimal writer for the "newc" cpio format the kernel unpacks as initramfs.

use std::collections::BTreeSet;

/// Accumulates an archive in memory; parents of every entry are added first,
/// because the kernel's unpacker does not create missing directories.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
    dirs: BTreeSet<String>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl Cpio {
    /// A directory (and its parents), once.
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.dirs.insert(path.to_string());
        self.entry(path, S_IFDIR | 0o755, &[]);
    }

    /// A regular file with permission bits `perm`.
    pub fn file(&mut self, path: &str, data: &[u8], perm: u32) {
        let path = path.trim_start_matches('/');
        self.parent(path);
        self.entry(path, S_IFREG | (perm & 0o7777), data);
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = path.trim_start_matches('/');
        self.parent(path);
        self.entry(path, S_IFLNK | 0o777, target.as_bytes());
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }

    fn parent(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_tool_lists_what_we_wrote() {
        let mut c = Cpio::default();
        c.file("/a/b/c.txt", b"hello", 0o644);
        c.symlink("/bin/sh", "busybox");
        let data = c.finish();
        assert_eq!(data.len() % 4, 0);
        let dir = std::env::temp_dir().join(format!("cpio-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("x.cpio");
        std::fs::write(&img, &data).unwrap();
        let out = std::process::Command::new("cpio")
            .args(["-i", "-d", "--quiet", "-F"])
            .arg(&img)
            .current_dir(&dir)
            .output()
            .expect("cpio tool (Debian package cpio)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(dir.join("a/b/c.txt")).unwrap(), b"hello");
        assert_eq!(
            std::fs::read_link(dir.join("bin/sh")).unwrap().to_str(),
            Some("busybox")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
