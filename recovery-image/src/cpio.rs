//! The initramfs writer: a newc ("070701") cpio archive, gzip-compressed.
//!
//! gzip because it is the one compression every kernel that takes an initramfs can unpack:
//! `CONFIG_RD_GZIP` defaults to on wherever `BLK_DEV_INITRD` is, while xz, zstd and lzma are
//! options a router's kernel often leaves out (and the kernel's xz decoder takes only some of
//! what the xz tool writes). The archive is reproducible: entries in path order, numbered
//! inodes from 1, owner root, every mtime the one given, and a gzip header without a time or
//! name.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use flate2::{Compression, GzBuilder};

use crate::tree::{Content, Node, Tree};
use crate::RecoveryError;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Writes `tree` as a gzip-compressed newc archive to `out`, every entry with `mtime`.
pub fn write_gz(tree: &Tree, mtime: u32, out: impl Write) -> Result<(), RecoveryError> {
    let gz = GzBuilder::new().mtime(0).write(out, Compression::best());
    let gz = write(tree, mtime, gz)?;
    gz.finish()
        .map_err(RecoveryError::io("compressing", "the archive"))?;
    Ok(())
}

/// Writes `tree` as an uncompressed newc archive to `out` and gives `out` back.
pub fn write<W: Write>(tree: &Tree, mtime: u32, mut out: W) -> Result<W, RecoveryError> {
    let mut w = Writer {
        out: &mut out,
        at: 0,
        ino: 0,
        mtime,
    };
    for (path, node) in tree.entries() {
        w.node(path, node)?;
    }
    w.header("TRAILER!!!", 0, 0, 0, 0)?;
    out.flush()
        .map_err(RecoveryError::io("writing", "the archive"))?;
    Ok(out)
}

struct Writer<'a, W: Write> {
    out: &'a mut W,
    /// Bytes written so far, for the 4-byte alignment newc wants after names and data.
    at: u64,
    ino: u32,
    mtime: u32,
}

fn werr(e: io::Error) -> RecoveryError {
    RecoveryError::io("writing", "the archive")(e)
}

impl<W: Write> Writer<'_, W> {
    fn node(&mut self, path: &str, node: &Node) -> Result<(), RecoveryError> {
        match node {
            Node::Dir { mode } => self.header(path, S_IFDIR | mode, 0, 0, 0),
            Node::Symlink { target } => {
                let size = size(path, target.len() as u64)?;
                self.header(path, S_IFLNK | 0o777, size, 0, 0)?;
                self.data(target.as_bytes())
            }
            Node::CharDev { major, minor, mode } => {
                self.header(path, S_IFCHR | mode, 0, *major, *minor)
            }
            Node::File { content, mode } => {
                let size = size(path, content.len())?;
                self.header(path, S_IFREG | mode, size, 0, 0)?;
                self.content(content)
            }
        }
    }

    fn header(
        &mut self,
        name: &str,
        mode: u32,
        size: u32,
        rmajor: u32,
        rminor: u32,
    ) -> Result<(), RecoveryError> {
        self.ino = self.ino.saturating_add(1);
        let nlink = if mode & S_IFDIR == S_IFDIR { 2 } else { 1 };
        let namesize = self::size(name, name.len() as u64 + 1)?;
        let ino = if name == "TRAILER!!!" { 0 } else { self.ino };
        let fields = [
            ino, mode, 0, 0, nlink, self.mtime, size, 0, 0, rmajor, rminor, namesize, 0,
        ];
        let mut head = String::with_capacity(110);
        head.push_str("070701");
        for f in fields {
            head.push_str(&format!("{f:08X}"));
        }
        self.put(head.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()
    }

    fn data(&mut self, bytes: &[u8]) -> Result<(), RecoveryError> {
        self.put(bytes)?;
        self.pad()
    }

    fn content(&mut self, content: &Content) -> Result<(), RecoveryError> {
        match content {
            Content::Bytes(b) => self.data(b),
            Content::Host { path, len } => {
                let copied = copy_exact(path, *len, &mut *self.out)?;
                self.at = self.at.saturating_add(copied);
                self.pad()
            }
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), RecoveryError> {
        self.out.write_all(bytes).map_err(werr)?;
        self.at = self.at.saturating_add(bytes.len() as u64);
        Ok(())
    }

    fn pad(&mut self) -> Result<(), RecoveryError> {
        let pad = (4 - self.at % 4) % 4;
        self.put(&[0u8; 3][..pad as usize])
    }
}

/// Copies exactly `len` bytes of `path` to `out`, refusing a file whose size changed since it
/// was described (its header already promised `len`).
pub(crate) fn copy_exact(path: &Path, len: u64, out: &mut dyn Write) -> Result<u64, RecoveryError> {
    let file = File::open(path).map_err(RecoveryError::io("opening", path))?;
    let mut limited = file.take(len.saturating_add(1));
    let copied = io::copy(&mut limited, out).map_err(RecoveryError::io("copying", path))?;
    if copied != len {
        return Err(RecoveryError::Changed {
            path: path.to_path_buf(),
            expected: len,
            found: copied,
        });
    }
    Ok(copied)
}

fn size(path: &str, n: u64) -> Result<u32, RecoveryError> {
    u32::try_from(n).map_err(|_| RecoveryError::TooBig {
        path: path.to_string(),
        size: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample(dir: &Path) -> Tree {
        let host = dir.join("host-file");
        std::fs::write(&host, b"from the host\n").unwrap();
        let mut t = Tree::new();
        t.bytes("/etc/banner", b"safe to flash\n".to_vec(), 0o644)
            .unwrap();
        t.copy("/bin/tool", &host, 0o755).unwrap();
        t.symlink("/bin/sh", "tool").unwrap();
        t.dir("/root/.ssh", 0o700).unwrap();
        t.char_dev("/dev/console", 5, 1).unwrap();
        t
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd
            .output()
            .expect("the tool runs (Debian packages cpio, gzip)");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn gzip_and_cpio_read_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let tree = sample(dir.path());
        let archive = dir.path().join("root.cpio.gz");
        write_gz(&tree, 1_700_000_000, File::create(&archive).unwrap()).unwrap();
        run(Command::new("gzip").arg("-t").arg(&archive));
        let plain = dir.path().join("root.cpio");
        let bytes = run(Command::new("gzip").arg("-dc").arg(&archive));
        std::fs::write(&plain, bytes).unwrap();
        let listing = run(Command::new("cpio")
            .args(["-t", "--quiet", "-F"])
            .arg(&plain));
        let names: Vec<&str> = listing.lines().collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/sh",
                "bin/tool",
                "dev",
                "dev/console",
                "etc",
                "etc/banner",
                "root",
                "root/.ssh"
            ]
        );
        let verbose = run(Command::new("cpio")
            .env("TZ", "UTC")
            .args(["-tv", "--quiet", "-F"])
            .arg(&plain));
        assert!(verbose.contains("crw-------"), "{verbose}");
        assert!(verbose.contains("drwx------"), "{verbose}");
        assert!(verbose.contains("Nov 14  2023"), "{verbose}");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        // Devices need root to be made: unpack everything else.
        run(Command::new("cpio")
            .args(["-i", "-d", "--quiet", "-F"])
            .arg(&plain)
            .args(["bin/*", "etc/*"])
            .current_dir(&out));
        assert_eq!(
            std::fs::read(out.join("bin/tool")).unwrap(),
            b"from the host\n"
        );
        assert_eq!(
            std::fs::read_link(out.join("bin/sh")).unwrap(),
            Path::new("tool")
        );
        assert_eq!(
            std::fs::read(out.join("etc/banner")).unwrap(),
            b"safe to flash\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let tree = sample(dir.path());
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_gz(&tree, 42, &mut a).unwrap();
        write_gz(&tree.clone(), 42, &mut b).unwrap();
        assert_eq!(a, b);
        let mut c = Vec::new();
        write_gz(&tree, 43, &mut c).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn a_file_that_grew_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tree = sample(dir.path());
        std::fs::write(
            dir.path().join("host-file"),
            b"longer than it was described\n",
        )
        .unwrap();
        let e = write_gz(&tree, 0, Vec::new()).unwrap_err();
        assert!(
            matches!(e, RecoveryError::Changed { expected: 14, .. }),
            "{e}"
        );
    }
}
