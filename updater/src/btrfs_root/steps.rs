//! `btrfs-install prepare` and `finish`: the install's two halves around the closure transfer
//! (`update.sh --root`), each of which checks the state it finds before it writes and picks up
//! where an interrupted run stopped.

use std::path::{Path, PathBuf};

use super::journal::{self, Journal, Purpose, Step};
use super::swap::{self, Switched};
use super::{bootfiles, target, BtrfsRootError, ACTIVE, STAGING};
use crate::error::Result;
use crate::root::DeviceRoot;

/// What `prepare` found and did.
#[derive(Debug, serde::Serialize)]
pub struct Prepared {
    /// The read-only snapshot of the vendor's `@`.
    pub snapshot: String,
    /// Whether this run took it (false: an earlier, interrupted run did).
    pub snapshot_taken: bool,
    /// Where the generation goes: the `--root` for the transfer, as a device path.
    pub staging: PathBuf,
    /// `receive`: send the generation; `finish`: it was complete, only `finish` is left.
    pub next: &'static str,
    pub device: Option<PathBuf>,
}

/// A snapshot name like schnapps' descriptions say: when and why, `@20261203T102500-pre-liminix`.
pub fn snapshot_name(now: u64, reason: &str) -> String {
    let slug: String = reason
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '-',
        })
        .collect();
    let slug = slug.trim_matches('-');
    let when = crate::closure::generations::timestamp(now);
    match slug.is_empty() {
        true => format!("@{when}"),
        false => format!("@{when}-{slug}"),
    }
}

/// Mounts the btrfs, keeps `@` as a read-only snapshot and makes the empty staging root,
/// or reports what an earlier run left.
pub fn prepare(
    root: &DeviceRoot,
    device: Option<&Path>,
    reason: &str,
    now: u64,
) -> Result<Prepared> {
    let top = target::mount(root, device)?;
    let mut prepared = Prepared {
        snapshot: String::new(),
        snapshot_taken: false,
        staging: root_relative(root, &top.dir.join(STAGING)),
        next: "receive",
        device: top.device.clone(),
    };
    let journal = match journal::read(&top.dir)? {
        Some(j) if j.step == Step::Switching && j.purpose == Purpose::Install => {
            prepared.snapshot = j.snapshot;
            prepared.next = "finish";
            return Ok(prepared);
        }
        // A restore cut in its switch is finished; one cut before it is abandoned (`@` was
        // never touched).
        Some(j) if j.purpose == Purpose::Restore => {
            match j.step {
                Step::Switching => {
                    swap::switch(&top.dir)?;
                }
                Step::Filling => {
                    swap::discard(&top.dir, STAGING)?;
                }
            }
            journal::remove(&top.dir)?;
            None
        }
        other => other,
    };
    let active = top.dir.join(ACTIVE);
    if !liminix_btrfs::is_subvolume(&active).map_err(BtrfsRootError::from)? {
        return Err(BtrfsRootError::NoActive { path: active }.into());
    }
    let j = match journal {
        Some(j) => j,
        None => {
            let j = Journal {
                purpose: Purpose::Install,
                step: Step::Filling,
                snapshot: free_name(&top.dir, &snapshot_name(now, reason))?,
            };
            // Before the snapshot: a run cut right after it still knows its name.
            journal::write(&top.dir, &j)?;
            j
        }
    };
    if !liminix_btrfs::is_subvolume(&top.dir.join(&j.snapshot)).map_err(BtrfsRootError::from)? {
        liminix_btrfs::snapshot(&active, &top.dir, &j.snapshot, true)
            .map_err(BtrfsRootError::from)?;
        prepared.snapshot_taken = true;
    }
    if !liminix_btrfs::is_subvolume(&top.dir.join(STAGING)).map_err(BtrfsRootError::from)? {
        liminix_btrfs::create_subvolume(&top.dir, STAGING).map_err(BtrfsRootError::from)?;
    }
    prepared.snapshot = j.snapshot;
    Ok(prepared)
}

/// `name`, or `name-2`, `name-3`, … when a subvolume has that name already (two installs in
/// one second): a fresh install must never take an older snapshot for its own.
fn free_name(top: &Path, name: &str) -> Result<String> {
    let mut candidate = name.to_owned();
    for n in 2.. {
        if !top.join(&candidate).exists() {
            break;
        }
        candidate = format!("{name}-{n}");
    }
    Ok(candidate)
}

/// What `finish` did.
#[derive(Debug, serde::Serialize)]
pub struct Finished {
    pub snapshot: String,
    /// The store path whose boot files are now in `@/boot` (`None`: an earlier run copied them).
    pub boot_files: Option<String>,
    pub boot_targets: Option<String>,
    pub kept_outgoing: bool,
}

/// Copies the boot files, links `boot`, switches `@` to the new root, points the boot loader
/// at it and clears the journal.
pub fn finish(
    root: &DeviceRoot,
    device: Option<&Path>,
    boot_targets: Option<&str>,
) -> Result<Finished> {
    let top = target::mount(root, device)?;
    let mut j = journal::read(&top.dir)?
        .filter(|j| j.purpose == Purpose::Install)
        .ok_or_else(|| BtrfsRootError::NoInstall {
            dir: top.dir.clone(),
        })?;
    let mut boot_files = None;
    if j.step == Step::Filling {
        let staging = DeviceRoot::open(top.dir.join(STAGING))?;
        boot_files = Some(bootfiles::install(&staging)?);
        bootfiles::link(&top.dir)?;
        j.step = Step::Switching;
        journal::write(&top.dir, &j)?;
    }
    let Switched { kept_outgoing } = swap::switch(&top.dir)?;
    if let Some(targets) = boot_targets {
        set_boot_targets(root, targets)?;
    }
    journal::remove(&top.dir)?;
    Ok(Finished {
        snapshot: j.snapshot,
        boot_files,
        boot_targets: boot_targets.map(str::to_owned),
        kept_outgoing,
    })
}

/// Sets `boot_targets` with the fw_setenv code, writing only when it differs.
fn set_boot_targets(root: &DeviceRoot, value: &str) -> Result<()> {
    let config = root.fw_env_config();
    let err = |source| BtrfsRootError::BootEnv {
        name: "boot_targets".into(),
        config: config.clone(),
        source,
    };
    let mut store = liminix_bootenv::devices::open_config(&config, true).map_err(err)?;
    let env = store.load().map_err(err)?.env;
    if env.get_str("boot_targets").as_deref() == Some(value) {
        return Ok(());
    }
    store
        .update(|env| env.set(b"boot_targets", value.as_bytes()))
        .map_err(err)?;
    Ok(())
}

/// `path` (below the root) as the device sees it.
fn root_relative(root: &DeviceRoot, path: &Path) -> PathBuf {
    match path.strip_prefix(root.dir()) {
        Ok(rel) => Path::new("/").join(rel),
        Err(_) => path.to_owned(),
    }
}
