//! The maintenance root described from its parts, whichever source gave them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::network::Network;
use crate::tree::Tree;
use crate::{libs, scripts, RecoveryError};

/// What goes into a maintenance root.
#[derive(Debug, Clone)]
pub struct Parts {
    /// The static agent, also linked as `flashcp`, `fw_printenv` and `fw_setenv`.
    pub agent: PathBuf,
    pub busybox: PathBuf,
    /// Its applets, when known (`busybox --list`); a busybox for another CPU gets [`COMMON_APPLETS`].
    pub applets: Option<Vec<String>>,
    pub dropbear: PathBuf,
    /// Where dropbear's shared libraries are looked up (the device's `/`, or a sysroot).
    pub lib_root: PathBuf,
    /// Dropbear host key files; none makes dropbear create a key at the first connection.
    pub host_keys: Vec<PathBuf>,
    /// The `authorized_keys` lines for root.
    pub authorized_keys: Vec<u8>,
    pub network: Network,
}

/// The names the agent answers to inside the maintenance root.
pub const AGENT_NAMES: &[&str] = &["liminix-agent", "flashcp", "fw_printenv", "fw_setenv"];

/// Applets /init and the hook run: a busybox without them cannot be used.
pub const NEEDED_APPLETS: &[&str] = &[
    "sh", "mount", "mkdir", "cat", "ip", "kill", "sleep", "sync", "reboot", "chroot", "env",
];

/// Applets a root with DHCP interfaces needs besides [`NEEDED_APPLETS`].
pub const DHCP_APPLETS: &[&str] = &["udhcpc"];

/// The links made when the busybox cannot be asked (built for another CPU): the needed
/// applets and the usual tools of a maintenance session.
pub const COMMON_APPLETS: &[&str] = &[
    "ash",
    "cp",
    "dd",
    "df",
    "dmesg",
    "echo",
    "free",
    "grep",
    "halt",
    "hexdump",
    "insmod",
    "ls",
    "md5sum",
    "modprobe",
    "mv",
    "poweroff",
    "ps",
    "readlink",
    "rm",
    "sed",
    "setsid",
    "sha256sum",
    "tftp",
    "umount",
    "uname",
    "vi",
    "wget",
];

/// A described maintenance root.
#[derive(Debug, Clone)]
pub struct Maintenance {
    pub tree: Tree,
}

impl Maintenance {
    pub fn build(parts: &Parts) -> Result<Maintenance, RecoveryError> {
        let mut t = Tree::new();
        for d in ["/proc", "/sys", "/dev", "/run", "/tmp", "/etc"] {
            t.dir(d, 0o755)?;
        }
        t.dir("/tmp", 0o1777)?;
        t.char_dev("/dev/console", 5, 1)?;
        programs(&mut t, parts)?;
        let keys = ssh(&mut t, parts)?;
        t.bytes(
            "/init",
            scripts::init(&parts.network, &keys).into_bytes(),
            0o755,
        )?;
        t.bytes("/exec", scripts::hook().into_bytes(), 0o755)?;
        if !parts.network.dhcp.is_empty() {
            t.bytes(
                scripts::UDHCPC_SCRIPT,
                scripts::UDHCPC.as_bytes().to_vec(),
                0o755,
            )?;
        }
        t.bytes("/etc/banner", scripts::BANNER.as_bytes().to_vec(), 0o644)?;
        t.bytes("/etc/passwd", scripts::PASSWD.as_bytes().to_vec(), 0o644)?;
        t.bytes("/etc/group", scripts::GROUP.as_bytes().to_vec(), 0o644)?;
        t.bytes("/etc/shells", scripts::SHELLS.as_bytes().to_vec(), 0o644)?;
        t.bytes("/etc/profile", scripts::PROFILE.as_bytes().to_vec(), 0o644)?;
        Ok(Maintenance { tree: t })
    }

    /// Bytes of RAM the root takes once written (see [`Tree::ram_bytes`]).
    pub fn ram_bytes(&self) -> u64 {
        self.tree.ram_bytes()
    }
}

/// The agent, busybox with its applet links, dropbear with its libraries; every program
/// in /bin, and /sbin, /usr/bin, /usr/sbin leading there.
fn programs(t: &mut Tree, parts: &Parts) -> Result<(), RecoveryError> {
    t.copy("/bin/liminix-agent", &parts.agent, 0o755)?;
    for name in &AGENT_NAMES[1..] {
        t.symlink(&format!("/bin/{name}"), "liminix-agent")?;
    }
    t.copy("/bin/busybox", &parts.busybox, 0o755)?;
    let applets: Vec<String> = match &parts.applets {
        Some(list) => {
            check_applets(&parts.busybox, list)?;
            list.clone()
        }
        None => NEEDED_APPLETS
            .iter()
            .chain(COMMON_APPLETS)
            .chain(DHCP_APPLETS)
            .map(|a| a.to_string())
            .collect(),
    };
    for applet in applets {
        let usable = !applet.is_empty() && !applet.contains('/') && applet != "busybox";
        if usable && !AGENT_NAMES.contains(&applet.as_str()) {
            t.symlink(&format!("/bin/{applet}"), "busybox")?;
        }
    }
    t.copy("/bin/dropbear", &parts.dropbear, 0o755)?;
    for (device, host) in libs::closure(&parts.lib_root, &parts.dropbear)? {
        t.copy(&device, &host, 0o755)?;
    }
    t.dir("/usr", 0o755)?;
    t.symlink("/sbin", "bin")?;
    t.symlink("/usr/bin", "../bin")?;
    t.symlink("/usr/sbin", "../bin")?;
    Ok(())
}

fn check_applets(busybox: &Path, list: &[String]) -> Result<(), RecoveryError> {
    let missing: Vec<&str> = NEEDED_APPLETS
        .iter()
        .copied()
        .filter(|a| !list.iter().any(|l| l == a))
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(RecoveryError::MissingApplets {
            busybox: busybox.to_path_buf(),
            missing: missing.join(", "),
        }),
    }
}

/// Host keys into /etc/dropbear and root's authorized keys; gives dropbear's key arguments.
fn ssh(t: &mut Tree, parts: &Parts) -> Result<String, RecoveryError> {
    if parts.authorized_keys.iter().all(u8::is_ascii_whitespace) {
        return Err(RecoveryError::NoAuthorizedKeys {
            searched: "the keys given".into(),
        });
    }
    t.dir("/root", 0o700)?;
    t.dir("/root/.ssh", 0o700)?;
    t.bytes(
        "/root/.ssh/authorized_keys",
        parts.authorized_keys.clone(),
        0o600,
    )?;
    t.dir("/etc/dropbear", 0o700)?;
    let mut args = Vec::new();
    for key in &parts.host_keys {
        let name = key
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| {
                n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            })
            .ok_or_else(|| RecoveryError::Unsafe {
                what: "the host key file name",
                value: key.display().to_string(),
            })?;
        let device = format!("/etc/dropbear/{name}");
        t.copy(&device, key, 0o600)?;
        args.push(format!("-r {device}"));
    }
    if args.is_empty() {
        args.push("-R".into());
    }
    Ok(args.join(" "))
}

/// The applets of `busybox` by asking it, or `None` when it cannot run here (another CPU).
pub fn applets(busybox: &Path) -> Option<Vec<String>> {
    let out = Command::new(busybox).arg("--list").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.lines().map(str::to_owned).collect())
}
