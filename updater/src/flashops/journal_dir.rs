//! Where the flash journal lives and whether it survives a power cut.
//!
//! The default directory is [`DeviceRoot::journal`]: on a board with a writable
//! root it is persistent and protects against power cuts and crashes alike. A
//! levitated system (the agent running from RAM, e.g. on a NOR board while the
//! flash is rewritten) has no persistent filesystem: the journal is then in RAM
//! and only protects against the agent itself crashing or being killed; after a
//! power cut it is gone. `--journal DIR` overrides the choice. A directory on tmpfs or ramfs is reported as volatile
//! whichever way it was chosen.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use serde::Serialize;

use super::error::{io_err, FlashOpError};
use crate::root::DeviceRoot;

const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// The chosen journal directory.
#[derive(Debug, Clone, Serialize)]
pub struct JournalLocation {
    /// Directory holding `tx-*.json` records, `staging/` and `lock`.
    pub dir: PathBuf,
    /// False when the directory is in RAM: a power cut loses the journal.
    pub persistent: bool,
}

impl JournalLocation {
    /// `--journal DIR` if given, else the persistent default, else the RAM one.
    pub fn locate(root: &DeviceRoot, override_dir: Option<&Path>) -> Self {
        let dir = match override_dir {
            Some(d) => d.to_path_buf(),
            None => root.journal(),
        };
        let persistent = !is_volatile(&dir);
        JournalLocation { dir, persistent }
    }

    /// Where staged images are kept.
    pub fn staging(&self) -> PathBuf {
        self.dir.join("staging")
    }

    /// A warning to print when the journal cannot survive a power cut.
    pub fn volatility_warning(&self) -> Option<String> {
        (!self.persistent).then(|| {
            format!(
                "journal {} is in RAM: it protects against the agent crashing, not against a power cut",
                self.dir.display()
            )
        })
    }

    /// Create the directory and take its exclusive lock for this process.
    pub fn lock(&self) -> Result<JournalLock, FlashOpError> {
        std::fs::create_dir_all(self.staging()).map_err(io_err("create", self.staging()))?;
        let path = self.dir.join("lock");
        let file = File::create(&path).map_err(io_err("create", &path))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(JournalLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(FlashOpError::Busy(path)),
            Err(e) => Err(io_err("lock", &path)(e.into())),
        }
    }
}

/// Held while one agent works on flash; released on drop (or process death).
#[derive(Debug)]
pub struct JournalLock {
    _file: File,
}

/// Whether `dir` (or its nearest existing ancestor) is on tmpfs or ramfs.
fn is_volatile(dir: &Path) -> bool {
    let mut p = dir;
    loop {
        if let Ok(st) = rustix::fs::statfs(p) {
            #[allow(clippy::unnecessary_cast)]
            let magic = st.f_type as i64;
            return magic == TMPFS_MAGIC || magic == RAMFS_MAGIC;
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefers_persist_and_falls_back_to_run() {
        let t = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(t.path());
        let loc = JournalLocation::locate(&root, None);
        assert_eq!(loc.dir, t.path().join("run/liminix/flash-journal"));
        std::fs::create_dir(t.path().join("persist")).unwrap();
        let loc = JournalLocation::locate(&root, None);
        assert_eq!(loc.dir, t.path().join("persist/.liminix/journal"));
        let o = t.path().join("elsewhere");
        assert_eq!(JournalLocation::locate(&root, Some(&o)).dir, o);
    }

    #[test]
    fn dev_shm_is_volatile() {
        if Path::new("/dev/shm").is_dir() {
            assert!(is_volatile(Path::new("/dev/shm/does/not/exist")));
        }
    }

    #[test]
    fn second_lock_is_busy() {
        let t = tempfile::tempdir().unwrap();
        let loc = JournalLocation::locate(&DeviceRoot::new(t.path()), Some(&t.path().join("j")));
        let held = loc.lock().unwrap();
        assert!(matches!(loc.lock(), Err(FlashOpError::Busy(_))));
        drop(held);
        loc.lock().unwrap();
    }
}
