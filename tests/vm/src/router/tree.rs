//! The root filesystem tree of one router firmware, staged in a host directory for a squashfs
//! writer: busybox, Debian's s6 as PID 1 with a Liminix-style `.s6-svscan/finish`, dropbear with
//! a host key fixed at build time, root's authorized key, the static agent (also as `flashcp`),
//! and a banner naming the firmware.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::keys::Keys;
use super::{BANNER_PREFIX, GATEWAY, GUEST_ADDRESS};
use crate::initramfs::shared_libs;
use crate::VmError;

/// Stage 1 of the router: what Liminix's s6-linux-init does before handing PID 1 to
/// s6-svscan, reduced to the filesystems, a writable copy of the scan directory, the static
/// network and the boot banner the host counts boots by.
const STAGE1: &str = r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs tmp /tmp
cp -a /etc/s6/scandir /run/service
ip link set lo up
ip link set eth0 up
ip addr add @ADDRESS@ dev eth0
ip route add default via @GATEWAY@
echo "@PREFIX@ $(cat /etc/banner)"
exec s6-svscan /run/service </dev/null
"#;

/// PID 1's last act, as in Liminix: hand over to the maintenance system when `levitate` left
/// one, otherwise reboot hard (busybox syncs first).
const FINISH: &str = r#"#!/bin/sh
if test -x /run/maintenance/exec; then
  exec /run/maintenance/exec
fi
exec reboot -f
"#;

/// Password logins off; the host key is the one baked into the image.
const DROPBEAR_RUN: &str = "#!/bin/sh\n\
exec dropbear -F -E -s -p 22 -P /run/dropbear.pid -r /etc/dropbear/dropbear_ed25519_host_key 2>&1\n";

/// The guest programs taken from the host (Debian packages s6 and dropbear-bin).
const HOST_PROGRAMS: [(&str, &str, &str); 5] = [
    ("s6-svscan", "/usr/bin/s6-svscan", "s6"),
    ("s6-supervise", "/usr/bin/s6-supervise", "s6"),
    ("s6-svscanctl", "/usr/bin/s6-svscanctl", "s6"),
    ("s6-svc", "/usr/bin/s6-svc", "s6"),
    ("dropbear", "/usr/sbin/dropbear", "dropbear-bin"),
];

/// A root tree in a temporary directory, removed when dropped.
pub struct RootTree {
    dir: tempfile::TempDir,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VmError + '_ {
    VmError::io(path)
}

impl RootTree {
    /// The tree of a firmware whose banner (console and `/etc/banner`) is `banner`, reached
    /// with `keys`, running `agent` (a static liminix-agent).
    pub fn build(banner: &str, keys: &Keys, agent: &Path) -> Result<Self, VmError> {
        let dir = tempfile::Builder::new()
            .prefix("liminix-router-root")
            .tempdir()
            .map_err(io(Path::new("tempdir")))?;
        let tree = RootTree { dir };
        tree.skeleton()?;
        tree.busybox()?;
        for (name, host, package) in HOST_PROGRAMS {
            crate::require(host, package)?;
            tree.executable(Path::new(host), &format!("/usr/bin/{name}"))?;
        }
        tree.executable(agent, "/bin/liminix-agent")?;
        tree.link("/bin/liminix-agent", "/usr/sbin/flashcp")?;
        tree.scripts(banner)?;
        tree.ssh(keys)?;
        Ok(tree)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn host(&self, guest: &str) -> PathBuf {
        self.dir.path().join(guest.trim_start_matches('/'))
    }

    /// Writes `data` at `guest` with permission bits `mode` (parents made as needed).
    pub fn file(&self, guest: &str, data: &[u8], mode: u32) -> Result<(), VmError> {
        let p = self.host(guest);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&p, data).map_err(io(&p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(io(&p))
    }

    /// A directory with permission bits `mode`.
    pub fn dir(&self, guest: &str, mode: u32) -> Result<(), VmError> {
        let p = self.host(guest);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(io(&p))
    }

    /// A symbolic link at `guest` pointing to `target`; an existing entry is kept.
    pub fn link(&self, target: &str, guest: &str) -> Result<(), VmError> {
        let p = self.host(guest);
        if p.symlink_metadata().is_ok() {
            return Ok(());
        }
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        symlink(target, &p).map_err(io(&p))
    }

    /// A host executable at `guest` with the shared libraries `ldd` lists for it, each where
    /// the dynamic loader looks for it.
    pub fn executable(&self, host: &Path, guest: &str) -> Result<(), VmError> {
        let data = std::fs::read(host).map_err(io(host))?;
        self.file(guest, &data, 0o755)?;
        for lib in shared_libs(host)? {
            let guest_lib = lib.to_string_lossy().into_owned();
            if self.host(&guest_lib).exists() {
                continue;
            }
            let real = std::fs::canonicalize(&lib).map_err(io(&lib))?;
            let data = std::fs::read(&real).map_err(io(&real))?;
            self.file(&guest_lib, &data, 0o755)?;
        }
        Ok(())
    }

    fn skeleton(&self) -> Result<(), VmError> {
        // No /persist: a squashfs router has no writable filesystem on flash, so the agent keeps
        // its flash journal in /run, as on the boards.
        for d in ["/proc", "/sys", "/dev", "/run", "/tmp", "/etc"] {
            self.dir(d, 0o755)?;
        }
        self.link("/run", "/var/run")?;
        self.file("/etc/passwd", b"root:*:0:0:root:/root:/bin/sh\n", 0o644)?;
        self.file("/etc/group", b"root:x:0:\n", 0o644)?;
        self.file("/etc/shells", b"/bin/sh\n", 0o644)?;
        self.file("/etc/liminix/board", b"qemu-nor-router\n", 0o644)
    }

    /// busybox-static with a link for every applet it lists.
    fn busybox(&self) -> Result<(), VmError> {
        crate::require("/bin/busybox", "busybox-static")?;
        self.executable(Path::new("/bin/busybox"), "/bin/busybox")?;
        let list = crate::run_command(Command::new("/bin/busybox").arg("--list-full"))?;
        for applet in String::from_utf8_lossy(&list).lines() {
            self.link("/bin/busybox", &format!("/{applet}"))?;
        }
        Ok(())
    }

    fn scripts(&self, banner: &str) -> Result<(), VmError> {
        let stage1 = STAGE1
            .replace("@ADDRESS@", GUEST_ADDRESS)
            .replace("@GATEWAY@", GATEWAY)
            .replace("@PREFIX@", BANNER_PREFIX);
        self.file("/init", stage1.as_bytes(), 0o755)?;
        self.file("/etc/banner", format!("{banner}\n").as_bytes(), 0o644)?;
        let scan = "/etc/s6/scandir";
        self.file(
            &format!("{scan}/.s6-svscan/finish"),
            FINISH.as_bytes(),
            0o755,
        )?;
        self.file(
            &format!("{scan}/dropbear/run"),
            DROPBEAR_RUN.as_bytes(),
            0o755,
        )
    }

    fn ssh(&self, keys: &Keys) -> Result<(), VmError> {
        let host_key = std::fs::read(&keys.host_key).map_err(io(&keys.host_key))?;
        self.file("/etc/dropbear/dropbear_ed25519_host_key", &host_key, 0o600)?;
        self.dir("/root", 0o700)?;
        self.dir("/root/.ssh", 0o700)?;
        let authorized = format!("{}\n", keys.client_public);
        self.file("/root/.ssh/authorized_keys", authorized.as_bytes(), 0o600)
    }
}
