//! A fake Liminix device: a chroot that looks like a writable-root Liminix
//! system, reached through a real OpenSSH sshd on loopback ([`SshServer`]).
//!
//! The chroot lives under `/var/lib/liminix-tests/<unique>/root`, not under
//! `/tmp`: sshd refuses a `ChrootDirectory` with any group- or world-writable
//! path component, so every component is root-owned 0755. It holds busybox
//! (without applets that would act on the host), the agent at
//! `/bin/liminix-agent`, `/dev/{null,zero,urandom}`, `/etc/liminix/board`,
//! `/etc/liminix/trusted-keys/`, an empty `/nix/store`, `/persist/nix ->
//! ../nix` (on Liminix the store physically lives in `/persist/nix`) and
//! recording stand-ins for `s6-rc-update`, `s6-rc` and `reboot` (see
//! [`standins`]). Dropping a [`Device`] unmounts anything below it and
//! removes it.

mod binaries;
pub mod binfmt;
mod mounts;
mod rootfs;
mod ssh;
pub mod standins;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

pub use binaries::{agent_binary, client_binary, pack_binary, target_dir, test_agents_dir};
pub use ssh::SshServer;
pub use standins::convfile_lines;

const BASE: &str = "/var/lib/liminix-tests";
/// Absolute: the child's PATH (`/bin`, the device's) is what `Command` searches.
const CHROOT: &str = "/usr/sbin/chroot";

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("sshd did not come up: {0}")]
    Sshd(String),
}

/// Options for a new [`Device`].
#[derive(Debug, Clone)]
pub struct DeviceBuilder {
    board: String,
    agent: Option<PathBuf>,
    busybox: PathBuf,
}

impl Default for DeviceBuilder {
    fn default() -> Self {
        DeviceBuilder {
            board: "qemu".into(),
            agent: None,
            busybox: PathBuf::from(rootfs::BUSYBOX),
        }
    }
}

impl DeviceBuilder {
    /// Content of `/etc/liminix/board` (default `qemu`).
    pub fn board(mut self, board: &str) -> Self {
        self.board = board.to_string();
        self
    }

    /// Install this binary as `/bin/liminix-agent` (see [`agent_binary`]).
    pub fn agent(mut self, path: impl Into<PathBuf>) -> Self {
        self.agent = Some(path.into());
        self
    }

    /// Use this (static) busybox instead of the host's: one for another CPU makes the device
    /// that CPU's, run through binfmt_misc ([`binfmt::register_qemu_user`] first).
    pub fn busybox(mut self, path: impl Into<PathBuf>) -> Self {
        self.busybox = path.into();
        self
    }

    pub fn build(self) -> Result<Device, DeviceError> {
        let base = Path::new(BASE);
        rootfs::mkdir_mode(base, 0o755)?;
        remove_stale(base);
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let state = base.join(format!(
            "{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        rootfs::mkdir_mode(&state, 0o755)?;
        let device = Device {
            root: state.join("root"),
            state,
        };
        rootfs::mkdir_mode(&device.root, 0o755)?;
        rootfs::populate(
            &device.root,
            &self.board,
            self.agent.as_deref(),
            &self.busybox,
        )?;
        Ok(device)
    }
}

/// Remove leftovers of test processes that died without dropping their device.
fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().unwrap_or("");
        if !pid.is_empty()
            && pid.bytes().all(|c| c.is_ascii_digit())
            && !Path::new("/proc").join(pid).exists()
        {
            mounts::unmount_below(&e.path());
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// A device chroot; see the module documentation.
#[derive(Debug)]
pub struct Device {
    state: PathBuf,
    root: PathBuf,
}

impl Device {
    pub fn builder() -> DeviceBuilder {
        DeviceBuilder::default()
    }

    /// A `qemu` board with the freshly built agent installed.
    pub fn new() -> Result<Device, DeviceError> {
        Device::builder().agent(agent_binary()).build()
    }

    /// The chroot directory (the device's `/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Host-side scratch directory next to the root (outside the chroot).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// Host path of a device path (`"/persist/x"` or `"persist/x"`).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        self.root.join(rel.strip_prefix("/").unwrap_or(rel))
    }

    /// Run a command inside the chroot with busybox `sh` (no ssh involved).
    pub fn run_in_chroot(&self, script: &str) -> Result<std::process::Output, DeviceError> {
        Command::new(CHROOT)
            .arg(&self.root)
            .args(["/bin/sh", "-c", script])
            .env_clear()
            .env("PATH", "/bin")
            .current_dir(&self.root)
            .output()
            .map_err(rootfs::io(Path::new(CHROOT)))
    }

    fn chroot_ok(&self, what: &str, script: &str) -> Result<String, DeviceError> {
        let out = self.run_in_chroot(script)?;
        if !out.status.success() {
            let detail = format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return Err(DeviceError::Command {
                what: what.to_string(),
                detail,
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Put `toplevel`'s `activate` and `init` into `/persist`, as a freshly
    /// flashed image has them (and, like one, no `/persist/nix-store-paths`).
    pub fn install_image(&self, toplevel: &str) -> Result<(), DeviceError> {
        self.chroot_ok(
            "install image",
            &format!("cp -fP {toplevel}/bin/activate {toplevel}/bin/init /persist/"),
        )?;
        Ok(())
    }

    /// Mimic a boot into `toplevel` (a `/nix/store/…` path present in the
    /// device's store): run its `bin/activate /` inside the chroot, then point
    /// `/run/s6-rc/compiled` at the *realpath* of `/etc/s6-rc/compiled`, as
    /// rc.init's `s6-rc-init -d` does. `/run/recorded-calls` is kept.
    pub fn boot_as(&self, toplevel: &str) -> Result<(), DeviceError> {
        let toplevel = format!("/{}", toplevel.trim_start_matches('/'));
        self.chroot_ok("activate", &format!("{toplevel}/bin/activate /"))?;
        let db = self.chroot_ok("resolve database", "readlink -f /etc/s6-rc/compiled")?;
        self.chroot_ok(
            "s6-rc-init",
            &format!("rm -rf /run/s6-rc && mkdir -p /run/s6-rc && ln -s {db} /run/s6-rc/compiled"),
        )?;
        Ok(())
    }

    /// Lines appended by the stand-ins since the last clear (format in [`standins`]).
    pub fn recorded_calls(&self) -> Vec<String> {
        let text = fs::read_to_string(self.path(standins::RECORD_FILE)).unwrap_or_default();
        text.lines().map(str::to_string).collect()
    }

    pub fn clear_recorded_calls(&self) {
        let _ = fs::remove_file(self.path(standins::RECORD_FILE));
    }

    /// Install a public key as `/etc/liminix/trusted-keys/NAME`.
    pub fn install_trusted_key(&self, name: &str, bytes: &[u8]) -> Result<(), DeviceError> {
        rootfs::write_mode(
            &self.path("etc/liminix/trusted-keys").join(name),
            bytes,
            0o644,
        )
    }

    /// Put `/nix/store` on a tmpfs of `size_bytes` (for "flash full" tests),
    /// keeping what the store already holds. Unmounted when the device drops.
    pub fn mount_tmpfs_store(&self, size_bytes: u64) -> Result<(), DeviceError> {
        let store = self.path("nix/store");
        let old = self.path("nix/.store-before-tmpfs");
        fs::rename(&store, &old).map_err(rootfs::io(&store))?;
        rootfs::mkdir_mode(&store, 0o755)?;
        mounts::mount_tmpfs(&store, size_bytes)?;
        let copied = Command::new("cp")
            .arg("-a")
            .arg(old.join("."))
            .arg(&store)
            .output();
        match copied {
            Ok(o) if o.status.success() => fs::remove_dir_all(&old).map_err(rootfs::io(&old)),
            Ok(o) => Err(DeviceError::Command {
                what: "copy store into tmpfs".into(),
                detail: String::from_utf8_lossy(&o.stderr).into_owned(),
            }),
            Err(e) => Err(DeviceError::Io {
                path: store,
                source: e,
            }),
        }
    }

    /// Put a tmpfs of `size_bytes` on the empty directory `rel` of the device (e.g. a small
    /// `/run`). Unmounted when the device drops.
    pub fn mount_tmpfs_at(&self, rel: &str, size_bytes: u64) -> Result<(), DeviceError> {
        mounts::mount_tmpfs(&self.path(rel), size_bytes)
    }

    /// Free bytes of the filesystem holding `/nix/store`.
    pub fn store_free_bytes(&self) -> Result<u64, DeviceError> {
        let store = self.path("nix/store");
        let st = rustix::fs::statvfs(&store).map_err(|e| DeviceError::Io {
            path: store,
            source: e.into(),
        })?;
        Ok(st.f_bavail * st.f_frsize)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        mounts::unmount_below(&self.state);
        let _ = fs::remove_dir_all(&self.state);
    }
}
