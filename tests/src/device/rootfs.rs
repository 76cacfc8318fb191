//! Populate a chroot that looks like a Liminix writable-root device.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use rustix::fs::{makedev, mknodat, FileType, Mode, CWD};

use super::{standins, DeviceError};

/// The host's busybox, the device's unless the builder names another.
pub(super) const BUSYBOX: &str = "/bin/busybox";

/// Applets never linked into the device: they would act on the host
/// (reboot/halt/poweroff via the shared kernel, killall by name across all
/// host processes, sysctl/swap/clock/module/freeze changes), or are PID 1
/// entry points (init, linuxrc) that must never run here.
const HOST_DANGEROUS: &[&str] = &[
    "reboot",
    "halt",
    "poweroff",
    "init",
    "linuxrc",
    "killall",
    "killall5",
    "pivot_root",
    "switch_root",
    "run-init",
    "swapon",
    "swapoff",
    "hwclock",
    "adjtimex",
    "rdate",
    "sysctl",
    "fsfreeze",
    "insmod",
    "rmmod",
    "modprobe",
    "depmod",
    "watchdog",
    "freeramdisk",
    "setkeycodes",
    "loadkmap",
    "loadfont",
    "chvt",
    "deallocvt",
    "openvt",
];

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DeviceError + '_ {
    move |source| DeviceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn mkdir_mode(path: &Path, mode: u32) -> Result<(), DeviceError> {
    fs::create_dir_all(path).map_err(io(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))
}

pub(super) fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DeviceError> {
    fs::write(path, bytes).map_err(io(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))
}

pub(super) fn populate(
    root: &Path,
    board: &str,
    agent: Option<&Path>,
    busybox: &Path,
) -> Result<(), DeviceError> {
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("etc/liminix", 0o755),
        ("etc/liminix/trusted-keys", 0o755),
        ("etc/s6-rc", 0o755),
        ("nix", 0o755),
        ("nix/store", 0o755),
        ("persist", 0o755),
        ("root", 0o700),
        ("run", 0o755),
        ("tmp", 0o1777),
    ] {
        mkdir_mode(&root.join(dir), mode)?;
    }
    // On Liminix the store lives on the persistent fs at /persist/nix and is
    // bind-mounted on /nix; the relative link gives the same view here.
    let persist_nix = root.join("persist/nix");
    symlink("../nix", &persist_nix).map_err(io(&persist_nix))?;
    install_busybox(root, busybox)?;
    device_nodes(root)?;
    etc_files(root, board)?;
    for (name, script) in [
        ("s6-rc-update", standins::S6_RC_UPDATE),
        ("s6-rc", standins::S6_RC),
        ("reboot", standins::REBOOT),
    ] {
        write_mode(&root.join("bin").join(name), script.as_bytes(), 0o755)?;
    }
    host_login_shell(root)?;
    if let Some(agent) = agent {
        let dest = root.join("bin/liminix-agent");
        fs::copy(agent, &dest).map_err(io(agent))?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).map_err(io(&dest))?;
    }
    Ok(())
}

/// A foreign busybox lists its applets through binfmt_misc ([`super::binfmt`]).
fn install_busybox(root: &Path, busybox: &Path) -> Result<(), DeviceError> {
    let dest = root.join("bin/busybox");
    fs::copy(busybox, &dest).map_err(io(busybox))?;
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(io(busybox))?;
    if !out.status.success() {
        return Err(DeviceError::Command {
            what: format!("{} --list", busybox.display()),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let list = String::from_utf8_lossy(&out.stdout);
    for applet in list.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        if HOST_DANGEROUS.contains(&applet) {
            continue;
        }
        let link = root.join("bin").join(applet);
        symlink("busybox", &link).map_err(io(&link))?;
    }
    Ok(())
}

fn device_nodes(root: &Path) -> Result<(), DeviceError> {
    for (name, minor) in [("null", 3), ("zero", 5), ("urandom", 9)] {
        let p = root.join("dev").join(name);
        mknodat(
            CWD,
            &p,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            makedev(1, minor),
        )
        .map_err(|e| DeviceError::Io {
            path: p.clone(),
            source: e.into(),
        })?;
        // mknod is subject to the umask; the nodes must be world-writable.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).map_err(io(&p))?;
    }
    Ok(())
}

fn etc_files(root: &Path, board: &str) -> Result<(), DeviceError> {
    let files: [(&str, String); 5] = [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n".into()),
        ("etc/group", "root:x:0:\n".into()),
        ("etc/liminix/board", format!("{board}\n")),
        ("etc/hostname", "liminix\n".into()),
        ("etc/profile", "export PATH=/bin\n".into()),
    ];
    for (rel, content) in files {
        write_mode(&root.join(rel), content.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// sshd runs the *host's* login shell for root (from the host's passwd) after
/// chrooting, so that path must exist inside the device and behave as `sh`.
fn host_login_shell(root: &Path) -> Result<(), DeviceError> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(io(Path::new("/etc/passwd")))?;
    let shell = passwd
        .lines()
        .find_map(|l| l.strip_prefix("root:"))
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or("/bin/sh");
    let inside = root.join(shell.trim_start_matches('/'));
    if inside.symlink_metadata().is_ok() {
        return Ok(());
    }
    if let Some(dir) = inside.parent() {
        mkdir_mode(dir, 0o755)?;
    }
    write_mode(&inside, b"#!/bin/sh\nexec /bin/sh \"$@\"\n", 0o755)
}
