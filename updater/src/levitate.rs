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
use std::path::{Path, PathBuf};

use liminix_recovery::system::{self, Choices};
use liminix_recovery::{dir, Maintenance, RecoveryError};

use crate::error::{ErrorKind, Result};
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
}

impl LevitateError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            LevitateError::Recovery(RecoveryError::Io { .. }) => ErrorKind::Io,
            LevitateError::Recovery(_) => ErrorKind::State,
            LevitateError::Ram { .. } => ErrorKind::NoSpace,
            LevitateError::NoMemAvailable { .. } => ErrorKind::Io,
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

/// Describes the maintenance root from the running system below `root`, checks that it fits
/// in RAM and writes it to `ROOT/run/maintenance`.
pub fn prepare(root: &DeviceRoot, agent: &Path, choices: &Choices) -> Result<Prepared> {
    let parts = system::parts(root.dir(), agent, choices).map_err(LevitateError::from)?;
    let maintenance = Maintenance::build(&parts).map_err(LevitateError::from)?;
    let needed = maintenance.ram_bytes();
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
    let target = root.maintenance();
    dir::write(&maintenance.tree, &target).map_err(LevitateError::from)?;
    Ok(Prepared {
        dir: target,
        entries: maintenance.tree.len(),
        ram_bytes: needed,
        available_bytes: available,
        host_keys: parts.host_keys.len(),
        addresses: parts
            .network
            .addresses
            .iter()
            .map(|(dev, cidr)| format!("{cidr} dev {dev}"))
            .collect(),
    })
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
            &s.join("control"),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = switch(&root).unwrap_err();
        assert!(e.to_string().contains("no s6-svscan reads"), "{e}");
    }
}
