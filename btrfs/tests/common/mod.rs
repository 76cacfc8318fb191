//! A real btrfs filesystem for tests: an image file made by `mkfs.btrfs`, loop-mounted by the
//! host kernel, unmounted when dropped. Needs root, btrfs-progs and loop devices; a missing
//! piece fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Mounted {
    _dir: tempfile::TempDir,
    pub mnt: PathBuf,
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is btrfs-progs installed? scripts/setup.sh)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Mounted {
    pub fn new() -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(128 << 20)
            .unwrap();
        run(Command::new("mkfs.btrfs").arg("-q").arg(&img));
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt));
        Mounted { _dir: dir, mnt }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// `btrfs subvolume show`'s `Flags:` line for `path`.
pub fn flags(path: &Path) -> String {
    let out = run(Command::new("btrfs").args(["subvolume", "show"]).arg(path));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Flags:").map(|f| f.trim().to_owned()))
        .unwrap_or_else(|| panic!("no Flags line in {out}"))
}
