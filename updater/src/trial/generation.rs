//! `receive --try`: a new generation boots once, by kexec of the running kernel, while
//! `/persist` still names the old one. Its health check runs `mark-good`, which makes it current;
//! a crash or hang ends in a reset, which boots what `/persist` names.
//!
//! The trial boot is told by the word `liminix.trial=N` on the kernel command line: preinit
//! then runs generation N's `activate` and `init` instead of `/persist/activate` and
//! `/persist/init`. `/persist/generations/trial` records the trial before the kexec, so the
//! boot after a failed trial can say which generation did not come up.

use std::fs;

use serde::Serialize;

use crate::closure::generations::Generations;
use crate::closure::store::Store;
use crate::error::{AgentError, Result};
use crate::root::DeviceRoot;
use crate::staging::{sync_dir, write_atomic};

use super::{marker, with_marker, TrialError};

/// The kernel the trial boots by default: the running system's, where Liminix's extlinux boot
/// files put it.
pub const DEFAULT_KERNEL: &str = "/boot/kernel";
/// Its initramfs, used when present (Liminix's kernels usually carry preinit built in).
pub const DEFAULT_INITRAMFS: &str = "/boot/initramfs";
/// Present when the kernel was built with kexec (`CONFIG_KEXEC_CORE`).
const KEXEC_LOADED: &str = "/sys/kernel/kexec_loaded";
const KEXEC_DISABLED: &str = "/proc/sys/kernel/kexec_load_disabled";
/// The record of a trial under way, in the generations directory.
const RECORD: &str = "trial";

/// The kernel and initramfs a trial boots, read and checked before anything is installed.
pub struct Prepared {
    kernel: Vec<u8>,
    kernel_path: String,
    initramfs: Option<Vec<u8>>,
}

impl Prepared {
    pub fn kernel_path(&self) -> &str {
        &self.kernel_path
    }
}

/// Checks that this device can boot a trial: its kernel has kexec and allows it, the kernel
/// file (`kernel`, else [`DEFAULT_KERNEL`]) is one the loader takes. Writes nothing.
pub fn prepare(
    root: &DeviceRoot,
    kernel: Option<&str>,
    initramfs: Option<&str>,
) -> Result<Prepared> {
    let loaded = root.join(KEXEC_LOADED);
    if fs::symlink_metadata(&loaded).is_err() {
        return Err(TrialError::NoKexec(loaded).into());
    }
    let disabled = root.join(KEXEC_DISABLED);
    if fs::read_to_string(&disabled).is_ok_and(|s| s.trim() == "1") {
        return Err(TrialError::KexecDisabled(disabled).into());
    }
    let kernel_path = kernel.unwrap_or(DEFAULT_KERNEL).to_owned();
    let bytes =
        read_device_file(root, &kernel_path).map_err(|source| TrialError::KernelUnreadable {
            path: kernel_path.clone(),
            source,
        })?;
    liminix_kexec::detect(&bytes).map_err(TrialError::Kernel)?;
    let initramfs = match initramfs {
        Some(p) => Some(read_device_file(root, p).map_err(AgentError::io("reading", p))?),
        None => read_device_file(root, DEFAULT_INITRAMFS).ok(),
    };
    Ok(Prepared {
        kernel: bytes,
        kernel_path,
        initramfs,
    })
}

fn read_device_file(root: &DeviceRoot, path: &str) -> std::io::Result<Vec<u8>> {
    fs::read(root.resolve(path)?)
}

/// Records the trial of `generation` and loads the kernel for it; the caller starts it with
/// [`start`] once the client has been told. A kernel that refuses the image leaves no record.
pub fn load(root: &DeviceRoot, generation: u32, p: &Prepared) -> Result<liminix_kexec::Loaded> {
    let running = liminix_kexec::running_command_line(root.dir()).map_err(TrialError::Kernel)?;
    let spec = liminix_kexec::BootSpec {
        kernel: p.kernel.clone(),
        initramfs: p.initramfs.clone(),
        command_line: with_marker(&running, &generation.to_string()),
    };
    let gens = Generations::new(root);
    let record = gens.dir().join(RECORD);
    write_atomic(&record, format!("{generation}\n").as_bytes())?;
    sync_dir(gens.dir())?;
    liminix_kexec::load(root.dir(), &spec).map_err(|e| {
        let _ = fs::remove_file(&record);
        AgentError::Kexec(e)
    })
}

/// Syncs and jumps into the loaded kernel; returns only on failure.
pub fn start(root: &DeviceRoot, generation: u32, loaded: liminix_kexec::Loaded) -> AgentError {
    crate::steplog::log(
        root,
        // Starts with `kexec` so that the next boot's `status` tells a kexec from a crash.
        &format!("kexec: trial of generation {generation}"),
    );
    match liminix_kexec::execute(loaded) {
        Ok(never) => match never {},
        Err(e) => {
            let _ = fs::remove_file(Generations::new(root).dir().join(RECORD));
            AgentError::Kexec(e)
        }
    }
}

/// The generation this boot is a trial of (`liminix.trial=N` on `ROOT/proc/cmdline`).
pub fn booted_trial(root: &DeviceRoot) -> Option<u32> {
    let cmdline = fs::read_to_string(root.cmdline()).ok()?;
    marker(&cmdline)?.parse().ok()
}

/// What `mark-good` did on a trial boot.
#[derive(Debug, Serialize)]
pub struct Confirmed {
    pub generation: u32,
    /// The generation current before (the rollback target now).
    pub previous: Option<u32>,
    pub already_current: bool,
}

/// `mark-good` on a trial boot of `generation`: makes it current (one atomic switch, as
/// rollback does) and clears the trial record.
pub fn confirm(root: &DeviceRoot, generation: u32) -> Result<Confirmed> {
    let _store = Store::open_locked(root)?;
    let gens = Generations::new(root);
    let record = gens.dir().join(RECORD);
    if let Ok(text) = fs::read_to_string(&record) {
        if text.trim() != generation.to_string() {
            return Err(TrialError::Mismatch {
                booted: generation,
                recorded: text.trim().to_owned(),
                record,
            }
            .into());
        }
    }
    let before = gens.current();
    let already_current = before == Some(generation);
    if !already_current {
        gens.switch_to(generation)?;
    }
    match fs::remove_file(&record) {
        Ok(()) => sync_dir(gens.dir())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(AgentError::io("removing", &record)(e)),
    }
    crate::steplog::log(
        root,
        &format!("mark-good: generation {generation} passed its trial and is current"),
    );
    Ok(Confirmed {
        generation,
        previous: if already_current {
            gens.previous()
        } else {
            before
        },
        already_current,
    })
}

/// A trial as `status` tells it.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TrialState {
    /// This boot is the trial; `mark-good` has not run yet.
    Running { generation: u32 },
    /// A trial was started and this boot is not it: the generation did not come up (or was
    /// not confirmed) and the device came back to the current one.
    Failed { generation: u32 },
}

/// The trial under way or failed, if any.
pub fn state(root: &DeviceRoot) -> Option<TrialState> {
    let gens = Generations::new(root);
    if let Some(generation) = booted_trial(root) {
        // Once `mark-good` made it current the trial is over, though the marker stays.
        return (gens.current() != Some(generation)).then_some(TrialState::Running { generation });
    }
    let text = fs::read_to_string(gens.dir().join(RECORD)).ok()?;
    let generation = text.trim().parse().ok()?;
    Some(TrialState::Failed { generation })
}

/// Forgets a failed trial's record: a new install or trial supersedes it.
pub fn forget(root: &DeviceRoot) {
    let _ = fs::remove_file(Generations::new(root).dir().join(RECORD));
}

pub fn render(t: &TrialState) -> String {
    match t {
        TrialState::Running { generation } => format!(
            "trial: generation {generation} is running on trial; `liminix-agent mark-good` makes \
             it current, a reset returns to the current one\n"
        ),
        TrialState::Failed { generation } => format!(
            "trial: generation {generation} FAILED its trial (it did not reach mark-good); the \
             current generation booted instead\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_boot_failed_trial_and_confirmation() {
        let t = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(t.path());
        fs::create_dir_all(t.path().join("proc")).unwrap();
        fs::create_dir_all(t.path().join("persist/generations")).unwrap();
        fs::write(t.path().join("proc/cmdline"), "console=ttyS0\n").unwrap();
        assert_eq!(state(&root), None);
        fs::write(t.path().join("persist/generations/trial"), "2\n").unwrap();
        assert_eq!(state(&root), Some(TrialState::Failed { generation: 2 }));
        fs::write(
            t.path().join("proc/cmdline"),
            "console=ttyS0 liminix.trial=2\n",
        )
        .unwrap();
        assert_eq!(booted_trial(&root), Some(2));
        assert_eq!(state(&root), Some(TrialState::Running { generation: 2 }));
        let e = confirm(&root, 3).unwrap_err();
        assert!(
            e.message().contains("names generation 2"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn no_kexec_is_refused_before_anything() {
        let t = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(t.path());
        let e = prepare(&root, None, None).err().unwrap();
        assert!(
            e.message().contains("sys/kernel/kexec_loaded is missing"),
            "{}",
            e.message()
        );
        fs::create_dir_all(t.path().join("sys/kernel")).unwrap();
        fs::write(t.path().join("sys/kernel/kexec_loaded"), "0\n").unwrap();
        let e = prepare(&root, None, None).err().unwrap();
        assert!(
            e.message().contains("/boot/kernel cannot be read"),
            "{}",
            e.message()
        );
        fs::create_dir_all(t.path().join("boot")).unwrap();
        fs::write(t.path().join("boot/kernel"), b"not a kernel at all").unwrap();
        let e = prepare(&root, None, None).err().unwrap();
        assert!(e.message().contains("expected bzImage"), "{}", e.message());
    }
}
