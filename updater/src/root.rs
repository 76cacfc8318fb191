//! The device's layout: where everything the agent reads or writes lives, relative to a root
//! directory. [`DeviceRoot`] is built once from `--root DIR` (default `/`) and passed to every
//! operation, so that the same code serves the running router, an install from a recovery
//! system (`--root /dest/@` on the Turris Omnia) and the tests' chroots. No other module spells
//! a device path.
//!
//! | what | device path |
//! |---|---|
//! | Nix store, its staging and trash directories | `/nix/store`, `/nix/store/.liminix-staging`, `/nix/store/.liminix-trash` |
//! | the agent's lock on the store and generations | the root directory itself ([`DeviceRoot::lock`]) |
//! | persist filesystem | `/persist` (or the root itself, see [`DeviceRoot::persist`]) |
//! | generations | `/persist/generations` |
//! | flash journal | `/persist/.liminix/journal`, or `/run/liminix/flash-journal` without `/persist` |
//! | image staging | `/run/liminix/staging` |
//! | security epochs | `/persist/.liminix/image-epoch` (applied images), `/etc/liminix/epoch` (the running image's) |
//! | A/B records | `/persist/ab/pending.json`, `/persist/ab/rollback.json` |
//! | slot layout | `/etc/liminix/ab.json` |
//! | trusted keys, board name | `/etc/liminix/trusted-keys/`, `/etc/liminix/board` |
//! | s6-rc databases | `/run/s6-rc/compiled` (live), `/etc/s6-rc/compiled` (the configuration's) |
//! | run directory | `/run/liminix` |
//! | btrfs top level while installing into `@`, block devices | `/dest`, `/sys/class/block` |
//! | U-Boot environment location | `/etc/fw_env.config` |
//! | maintenance root (levitate), s6 scan directory | `/run/maintenance`, `/run/service` |
//! | kernel views | `/proc/cmdline`, `/proc/meminfo`, `/sys/fs/pstore`, `/dev/mtdN`, `/dev/pmsg0`, `/dev/kmsg` |
//! | the previous boot's pstore records | `/run/log/previous-boot/` |
//!
//! Board definitions (`board.toml`) and the sysfs/dev lookups of the flash crates take the root
//! directory ([`DeviceRoot::dir`]) and find their own files below it.

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::{AgentError, Result};

/// Device path of the Nix store (store paths are named by it, in manifests and in links).
pub const STORE: &str = "/nix/store";
/// Device path of the slot layout (messages name the file the user edits).
pub const SLOT_LAYOUT: &str = "/etc/liminix/ab.json";
/// Where the flash journal lives on a device with a persist filesystem.
const PERSIST_JOURNAL: &str = "/persist/.liminix/journal";
/// Where it lives without one (RAM: it survives an agent crash, not a power cut).
const RAM_JOURNAL: &str = "/run/liminix/flash-journal";

#[derive(Clone, Debug)]
pub struct DeviceRoot {
    root: PathBuf,
}

impl DeviceRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DeviceRoot { root: root.into() }
    }

    /// The layout below `root`, which must be an existing directory: an agent that made a
    /// root it was pointed at by mistake would leave things behind where nothing belongs.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(DeviceRoot { root }),
            Ok(_) => Err(AgentError::io("opening the device root", &root)(
                std::io::Error::from(std::io::ErrorKind::NotADirectory),
            )),
            Err(e) => Err(AgentError::io("opening the device root", &root)(e)),
        }
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

    /// The store's directory on the host, with links on the way resolved inside the root
    /// ([`Self::resolve`]), so toplevels and the store are compared in one form.
    pub fn store(&self) -> PathBuf {
        // Resolved inside the root: a device whose /nix links to /persist/nix (absolute, as
        // the device reads it) must not have the agent write into the host's /persist.
        self.resolve(STORE).unwrap_or_else(|_| self.join(STORE))
    }

    /// Where received store paths wait until they are verified (on the store's filesystem,
    /// so that moving them in is a rename).
    pub fn store_staging(&self) -> PathBuf {
        self.store().join(".liminix-staging")
    }

    /// Where deleted store paths go before they are removed, so a half-deleted path never
    /// keeps its name.
    pub fn store_trash(&self) -> PathBuf {
        self.store().join(".liminix-trash")
    }

    /// Takes the lock one agent holds while it changes the store and the generations: an
    /// exclusive `flock` of the root directory itself. A lock file would have to be created
    /// first, and a refused update must leave the device as it was.
    pub fn lock(&self) -> Result<File> {
        let dir = File::open(&self.root)
            .map_err(AgentError::io("opening the device root", &self.root))?;
        match flock(&dir, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(dir),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(AgentError::Busy(self.root.clone())),
            Err(e) => Err(AgentError::io("locking", &self.root)(e.into())),
        }
    }

    /// Whether the device has a persist filesystem of its own (`ROOT/persist`). A NOR board
    /// running a read-only image has none.
    pub fn has_persist(&self) -> bool {
        self.join("/persist").is_dir()
    }

    /// The persist filesystem: `ROOT/persist` on a running device, or ROOT itself when the root
    /// is that filesystem (the Turris Omnia's btrfs `@` subvolume seen from a recovery system),
    /// the same rule as Liminix's `install` script.
    pub fn persist(&self) -> PathBuf {
        if self.has_persist() {
            self.join("/persist")
        } else {
            self.root.clone()
        }
    }

    pub fn generations(&self) -> PathBuf {
        self.persist().join("generations")
    }

    /// The flash journal's default directory: persistent when the device has `/persist`,
    /// else in RAM. Decided from `ROOT/persist` itself, not [`Self::persist`]: that falls back
    /// to ROOT, which on a NOR board is the read-only image.
    pub fn journal(&self) -> PathBuf {
        match self.has_persist() {
            true => self.join(PERSIST_JOURNAL),
            false => self.join(RAM_JOURNAL),
        }
    }

    /// The default directory `apply` stages images in (RAM on a running router).
    pub fn image_staging(&self) -> PathBuf {
        self.join("/run/liminix/staging")
    }

    /// The highest security epoch applied to an image device (only kept with `/persist`).
    pub fn image_epoch(&self) -> PathBuf {
        self.join("/persist/.liminix/image-epoch")
    }

    /// The running image's own security epoch, written into it by the build (read-only).
    pub fn built_epoch(&self) -> PathBuf {
        self.join("/etc/liminix/epoch")
    }

    /// The A/B records both slots share: the pending trial and the last rollback.
    pub fn ab_records(&self) -> PathBuf {
        self.join("/persist/ab")
    }

    /// The slot layout: the device's own description of its A/B slots, when it has one (else
    /// the slots come from its board definition).
    pub fn slot_layout(&self) -> PathBuf {
        self.join(SLOT_LAYOUT)
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

    /// The file holding the board name, the one line that says which board this device is.
    pub fn board_name(&self) -> PathBuf {
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

    /// Where a recovery system mounts the top level of the board's btrfs to install into it.
    pub fn install_mount(&self) -> PathBuf {
        self.join("/dest")
    }

    /// The kernel's list of block devices (one entry per disk and partition).
    pub fn block_class(&self) -> PathBuf {
        self.join("/sys/class/block")
    }

    /// Where the U-Boot environment is, for `fw_setenv` and the install's `boot_targets`.
    pub fn fw_env_config(&self) -> PathBuf {
        self.join("/etc/fw_env.config")
    }

    /// The kernel command line (the U-Boot flow reads the booted slot from it).
    pub fn cmdline(&self) -> PathBuf {
        self.join("/proc/cmdline")
    }

    /// What the kernel says about memory (MemAvailable, for levitate's RAM check).
    pub fn meminfo(&self) -> PathBuf {
        self.join("/proc/meminfo")
    }

    /// The maintenance root levitate writes, whose `exec` PID 1's finish script runs.
    pub fn maintenance(&self) -> PathBuf {
        self.join(liminix_recovery::scripts::MAINTENANCE_DIR)
    }

    /// s6-svscan's scan directory (PID 1 on Liminix), with its `.s6-svscan/` control files.
    pub fn scandir(&self) -> PathBuf {
        self.join("/run/service")
    }

    /// The records pstore kept from the previous boot.
    pub fn pstore(&self) -> PathBuf {
        self.join("/sys/fs/pstore")
    }

    /// Where `boot-log` keeps the previous boot's pstore records, one file each.
    pub fn previous_boot_log(&self) -> PathBuf {
        self.join("/run/log/previous-boot")
    }

    /// The character device of MTD partition `index`.
    pub fn mtd_device(&self, index: u32) -> PathBuf {
        self.join(&format!("/dev/mtd{index}"))
    }

    /// Resolves a device path (possibly through symlinks, absolute ones meaning the device's root)
    /// to a host path, never leaving the root: `..` at the top stays at the top, as in a chroot.
    pub fn resolve(&self, device_path: &str) -> std::io::Result<PathBuf> {
        liminix_bundle::resolve::resolve_below(&self.root, device_path)
    }

    /// The device path (as the device sees it) of a host path below the root.
    pub fn device_path(&self, host: &Path) -> Option<String> {
        let rel = host.strip_prefix(&self.root).ok()?;
        Some(format!("/{}", rel.to_str()?))
    }
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

    #[test]
    fn journal_prefers_persist_and_falls_back_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(dir.path());
        assert_eq!(root.journal(), dir.path().join("run/liminix/flash-journal"));
        assert_eq!(root.persist(), dir.path());
        std::fs::create_dir(dir.path().join("persist")).unwrap();
        assert_eq!(root.journal(), dir.path().join("persist/.liminix/journal"));
        assert_eq!(root.persist(), dir.path().join("persist"));
    }
}
