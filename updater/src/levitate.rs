//! `levitate`: the router leaves its flash for a maintenance root in RAM, Liminix's way.
//!
//! The root is described from the running system (liminix-recovery), checked against the
//! RAM the kernel says is available, written to `/run/maintenance` in one rename, and then
//! PID 1 is asked to stop. Liminix's PID 1 is s6-svscan; when it stops it runs
//! `.s6-svscan/finish`, which execs `/run/maintenance/exec` when that is executable: the hook
//! ends every process, changes root into `/run/maintenance` and execs its /init as PID 1.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use liminix_recovery::system::{self, Choices};
use liminix_recovery::{dir, Maintenance, Parts, RecoveryError};

use crate::error::{AgentError, ErrorKind, Result};
use crate::root::DeviceRoot;

/// RAM kept free besides the root itself: dropbear, the shells and a flashcp run need a few
/// MiB, and a kernel pressed to its last pages kills processes.
pub const MARGIN: u64 = 8 << 20;

/// s6-svscan's control command: stop the supervised services, then run `finish`. What
/// `s6-svscanctl -t` writes, written here so that no s6 program is needed on the PATH.
const TERMINATE: &[u8] = b"t";

#[derive(Debug, thiserror::Error)]
pub enum LevitateError {
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error("the maintenance root needs {needed} bytes of RAM and {margin} more to run in, but {meminfo} says only {available} are available")]
    Ram {
        needed: u64,
        margin: u64,
        available: u64,
        meminfo: PathBuf,
    },
    #[error("{path} has no MemAvailable line: cannot tell whether the maintenance root fits")]
    NoMemAvailable { path: PathBuf },
    #[error("{finish} does not run {hook}: PID 1 would stop without entering the maintenance root (the root is ready; --no-switch leaves it at that)")]
    NoHook { finish: PathBuf, hook: String },
    #[error(
        "no s6-svscan reads {control}: is PID 1 s6-svscan with its scan directory at /run/service?"
    )]
    NoSvscan {
        control: PathBuf,
        source: std::io::Error,
    },
    #[error("the update needs {} bytes of RAM: the bundle ({bundle}), its images staged ({images}), the maintenance root ({root}) and {margin} for its processes; MemAvailable is {available} and /run has {run_free} bytes free: nothing was changed", bundle.saturating_add(*images).saturating_add(*root).saturating_add(*margin))]
    UpdateRam {
        bundle: u64,
        images: u64,
        root: u64,
        margin: u64,
        available: u64,
        run_free: u64,
    },
    #[error("{path} cannot be carried into the maintenance root: it must be a file below /run (the tmpfs the root is written to)")]
    NotCarriable { path: PathBuf },
    #[error("the running kernel's image is not at {tried}, and no `firmware` or `kernel` flash partition starts with a uImage ({detail}): give it with --kernel")]
    NoKernel { tried: PathBuf, detail: String },
}

impl LevitateError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            LevitateError::Recovery(RecoveryError::Io { .. }) => ErrorKind::Io,
            LevitateError::Recovery(_) => ErrorKind::State,
            LevitateError::Ram { .. } | LevitateError::UpdateRam { .. } => ErrorKind::NoSpace,
            LevitateError::NotCarriable { .. } => ErrorKind::Usage,
            LevitateError::NoMemAvailable { .. } | LevitateError::NoKernel { .. } => ErrorKind::Io,
            LevitateError::NoHook { .. } | LevitateError::NoSvscan { .. } => ErrorKind::Refused,
        }
    }
}

/// What was prepared.
#[derive(Debug, serde::Serialize)]
pub struct Prepared {
    pub dir: PathBuf,
    pub entries: usize,
    pub ram_bytes: u64,
    pub available_bytes: u64,
    pub host_keys: usize,
    pub addresses: Vec<String>,
}

/// The maintenance root described from the running system below `root`, refused when it
/// would not fit in RAM: `extra` is what the hand-over holds besides the unpacked root (the
/// compressed initramfs a kexec keeps until the new kernel unpacks it).
pub fn describe(
    root: &DeviceRoot,
    agent: &Path,
    choices: &Choices,
) -> Result<(Parts, Maintenance)> {
    let parts = system::parts(root.dir(), agent, choices).map_err(LevitateError::from)?;
    let maintenance = Maintenance::build(&parts).map_err(LevitateError::from)?;
    Ok((parts, maintenance))
}

/// Refuses a root of `needed` bytes that would not fit in MemAvailable with [`MARGIN`] to
/// spare; gives MemAvailable.
pub fn check_ram(root: &DeviceRoot, needed: u64) -> Result<u64> {
    let meminfo = root.meminfo();
    let available = mem_available(&meminfo)?;
    if needed.saturating_add(MARGIN) > available {
        return Err(LevitateError::Ram {
            needed,
            margin: MARGIN,
            available,
            meminfo,
        }
        .into());
    }
    Ok(available)
}

/// Describes the maintenance root from the running system below `root`, checks that it fits
/// in RAM and writes it to `ROOT/run/maintenance`.
pub fn prepare(root: &DeviceRoot, agent: &Path, choices: &Choices) -> Result<Prepared> {
    prepare_carrying(root, agent, choices, None)
}

/// [`prepare`], then moves the file `carry` (below `ROOT/run`) into the written root at the
/// same path, where the maintenance system finds it: a rename within the tmpfs, no copy.
pub fn prepare_carrying(
    root: &DeviceRoot,
    agent: &Path,
    choices: &Choices,
    carry: Option<&Path>,
) -> Result<Prepared> {
    let carried = carry.map(|c| carried_path(root, c)).transpose()?;
    let (parts, mut maintenance) = describe(root, agent, choices)?;
    carry_config(root, &mut maintenance)?;
    let needed = maintenance.ram_bytes();
    let available = check_ram(root, needed)?;
    let target = root.maintenance();
    check_room(&target, needed)?;
    dir::write(&maintenance.tree, &target).map_err(LevitateError::from)?;
    if let Some((from, inside)) = carried {
        let to = target.join(&inside);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(AgentError::io("creating", dir))?;
        }
        std::fs::rename(&from, &to)
            .map_err(AgentError::io("moving into the maintenance root", &from))?;
    }
    Ok(prepared(&parts, &maintenance, target, available))
}

/// The file to carry below `ROOT`, and its path relative to the maintenance root's `/`.
fn carried_path(root: &DeviceRoot, carry: &Path) -> Result<(PathBuf, PathBuf)> {
    let refuse = || LevitateError::NotCarriable {
        path: carry.to_path_buf(),
    };
    let inside = carry
        .strip_prefix("/")
        .ok()
        .filter(|rel| rel.starts_with("run") && rel.components().count() > 1)
        .filter(|rel| {
            rel.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
        .ok_or_else(refuse)?;
    let from = root.dir().join(inside);
    match std::fs::symlink_metadata(&from) {
        Ok(m) if m.is_file() => Ok((from, inside.to_path_buf())),
        Ok(_) => Err(refuse().into()),
        Err(e) => Err(AgentError::io("reading", &from)(e)),
    }
}

/// What `apply` needs in the maintenance root besides the programs: the device's
/// `/etc/liminix` (board name and definition, trusted keys, the built epoch), file by file.
pub fn carry_config(root: &DeviceRoot, m: &mut Maintenance) -> Result<()> {
    let dir = root.join("/etc/liminix");
    let mut todo = vec![(dir, String::from("/etc/liminix"))];
    while let Some((host, inside)) = todo.pop() {
        let entries = match std::fs::read_dir(&host) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(AgentError::io("reading", &host)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(AgentError::io("reading", &host))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let (path, at) = (entry.path(), format!("{inside}/{name}"));
            // Links followed: Liminix's /etc entries point into the store.
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => todo.push((path, at)),
                // Modes kept: `flash-setup` there is a program the maintenance /init runs.
                Ok(meta) if meta.is_file() => m
                    .tree
                    .copy(&at, &path, meta.permissions().mode() & 0o755)
                    .map_err(LevitateError::from)?,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Refuses a root the filesystem of `target` (the `/run` tmpfs, often capped below the RAM
/// there is) has no room for.
fn check_room(target: &Path, needed: u64) -> Result<()> {
    let parent = target.parent().unwrap_or(Path::new("/"));
    let (available, _, _) = crate::staging::free_space(parent)?;
    match needed > available {
        true => Err(crate::error::AgentError::NoSpace {
            dir: parent.to_path_buf(),
            needed,
            available,
        }),
        false => Ok(()),
    }
}

/// What `levitate` reports about a root it made.
pub fn prepared(parts: &Parts, m: &Maintenance, dir: PathBuf, available: u64) -> Prepared {
    Prepared {
        dir,
        entries: m.tree.len(),
        ram_bytes: m.ram_bytes(),
        available_bytes: available,
        host_keys: parts.host_keys.len(),
        addresses: parts
            .network
            .addresses
            .iter()
            .map(|(dev, cidr)| format!("{cidr} dev {dev}"))
            .collect(),
    }
}

/// The root as a gzip newc initramfs (for `--kexec`), every mtime 0.
pub fn initramfs(m: &Maintenance) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    liminix_recovery::cpio::write_gz(&m.tree, 0, &mut out).map_err(LevitateError::from)?;
    Ok(out)
}

/// The running kernel's image, where a system keeps it: `ROOT/boot/vmlinuz-RELEASE`.
pub fn running_kernel(root: &DeviceRoot) -> Result<PathBuf> {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let path = root.join(&format!("/boot/vmlinuz-{release}"));
    match path.is_file() {
        true => Ok(path),
        false => Err(LevitateError::NoKernel {
            tried: path,
            detail: "not looked at".into(),
        }
        .into()),
    }
}

/// Flash partitions that start with the running firmware's kernel, in the order looked at:
/// Liminix's NOR boards keep a uImage at the start of `firmware`, some boards a `kernel`
/// partition of its own.
pub const KERNEL_PARTITIONS: &[&str] = &["firmware", "kernel"];

/// The kernel of the firmware on the flash, for a router without /boot: the uImage at the
/// start of the first of [`KERNEL_PARTITIONS`] that has one. Gives the uImage and where it
/// was found (`mtd:NAME`); an error says why each partition did not do.
pub fn firmware_kernel(root: &DeviceRoot) -> std::result::Result<(Vec<u8>, String), String> {
    let mut why = Vec::new();
    for name in KERNEL_PARTITIONS {
        match partition_uimage(root, name) {
            Ok(k) => return Ok((k, format!("mtd:{name}"))),
            Err(e) => why.push(format!("mtd:{name}: {e}")),
        }
    }
    Err(why.join("; "))
}

fn partition_uimage(root: &DeviceRoot, name: &str) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    let entry = liminix_mtd::sysfs::find_by_name(root.dir(), name).map_err(|e| e.to_string())?;
    let dev = root.mtd_device(entry.index);
    let mut f = std::fs::File::open(&dev).map_err(|e| format!("opening {}: {e}", dev.display()))?;
    let mut header = [0u8; 64];
    f.read_exact(&mut header)
        .map_err(|e| format!("reading {}: {e}", dev.display()))?;
    if !liminix_kexec::uimage::is_uimage(&header) {
        return Err("no uImage magic".into());
    }
    let size = u64::from(u32::from_be_bytes([
        header[12], header[13], header[14], header[15],
    ]));
    let total = size.saturating_add(64);
    if total > entry.size {
        return Err(format!(
            "its uImage claims {total} bytes, the partition has {}",
            entry.size
        ));
    }
    let mut image = header.to_vec();
    f.take(size)
        .read_to_end(&mut image)
        .map_err(|e| format!("reading {}: {e}", dev.display()))?;
    if image.len() as u64 != total {
        return Err(format!("{} ends inside its uImage", dev.display()));
    }
    Ok(image)
}

/// MemAvailable of `/proc/meminfo`, in bytes.
pub fn mem_available(path: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(path).map_err(crate::error::AgentError::io("reading", path))?;
    text.lines()
        .find_map(|l| {
            let kib = l.strip_prefix("MemAvailable:")?.trim().strip_suffix("kB")?;
            kib.trim().parse::<u64>().ok()?.checked_mul(1024)
        })
        .ok_or_else(|| {
            LevitateError::NoMemAvailable {
                path: path.to_path_buf(),
            }
            .into()
        })
}

/// Asks PID 1 (s6-svscan on `ROOT/run/service`) to stop, after checking that its finish
/// script will hand over to the hook: otherwise stopping it would only end the system.
pub fn switch(root: &DeviceRoot) -> Result<()> {
    let scandir = root.scandir();
    let finish = scandir.join(".s6-svscan/finish");
    let hook = format!("{}/exec", liminix_recovery::scripts::MAINTENANCE_DIR);
    let script =
        std::fs::read(&finish).map_err(crate::error::AgentError::io("reading", &finish))?;
    if !contains(&script, hook.as_bytes()) {
        return Err(LevitateError::NoHook { finish, hook }.into());
    }
    let control = scandir.join(".s6-svscan/control");
    // Non-blocking: a FIFO nobody reads fails at once (ENXIO) instead of hanging.
    let mut fifo = OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&control)
        .map_err(|source| LevitateError::NoSvscan {
            control: control.clone(),
            source,
        })?;
    crate::steplog::log(root, "levitate: handing PID 1 over to the maintenance root");
    fifo.write_all(TERMINATE)
        .map_err(crate::error::AgentError::io("writing", &control))?;
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meminfo");
        std::fs::write(&p, "MemTotal: 60000 kB\nMemAvailable:   30000 kB\n").unwrap();
        assert_eq!(mem_available(&p).unwrap(), 30000 * 1024);
        std::fs::write(&p, "MemTotal: 60000 kB\n").unwrap();
        assert!(mem_available(&p).is_err());
    }

    #[test]
    fn only_a_file_below_run_is_carried() {
        let dir = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(dir.path());
        std::fs::create_dir_all(dir.path().join("run/liminix")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("run/liminix/b"), "x").unwrap();
        std::fs::write(dir.path().join("etc/b"), "x").unwrap();
        let (from, inside) = carried_path(&root, Path::new("/run/liminix/b")).unwrap();
        assert_eq!(from, dir.path().join("run/liminix/b"));
        assert_eq!(inside, Path::new("run/liminix/b"));
        for bad in [
            "/etc/b",
            "/run",
            "run/liminix/b",
            "/run/../etc/b",
            "/run/liminix",
        ] {
            let e = carried_path(&root, Path::new(bad)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{bad}: {e}");
        }
        let e = carried_path(&root, Path::new("/run/liminix/missing")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    }

    #[test]
    fn a_finish_script_without_the_hook_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(dir.path());
        let s = root.scandir().join(".s6-svscan");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("finish"), "#!/bin/sh\nexec reboot -f\n").unwrap();
        let e = switch(&root).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
        std::fs::write(
            s.join("finish"),
            "#!/bin/sh\ntest -x /run/maintenance/exec && exec /run/maintenance/exec\n",
        )
        .unwrap();
        // A control FIFO nobody reads: the agent says so instead of waiting.
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            s.join("control"),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = switch(&root).unwrap_err();
        assert!(e.to_string().contains("no s6-svscan reads"), "{e}");
    }
}
