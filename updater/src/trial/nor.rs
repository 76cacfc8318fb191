//! `apply --try` on a NOR router, and its `mark-good` (docs/try-boot.md).
//!
//! Try: the bundle passes every check `apply` makes (signature, board, epoch, each target's
//! geometry and size; that the target holds the running root is what a trial is for, so that
//! refusal alone is waived), its one image is staged and verified, and its kernel (the uImage
//! at the start of the image) is kexec'd with an initramfs holding the image itself
//! (liminix_recovery::trial). Nothing is written to the flash.
//!
//! Commit: in the trial system, `mark-good` finds the image kept in RAM, hashes it against the
//! bundle's sha256 again, and writes it with `apply`'s journalled raw writer (only the erase
//! blocks that differ).

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use liminix_boards::{Board, Place, Strategy};
use liminix_bundle::stream::Header;
use liminix_flash::Progress;
use liminix_recovery::carry;
use liminix_recovery::trial::{self as initramfs, TrialParts, DESCRIPTION, IMAGE, TRIAL_DIR};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{marker, with_marker, TrialError, ID_LEN};
use crate::apply::image::{self, ImageReport, Job};
use crate::apply::{checks, ApplyError, RealDevices, StagedFile};
use crate::error::{AgentError, Result};
use crate::flashops::journal_dir::JournalLocation;
use crate::root::DeviceRoot;

/// Modules a trial needs to mount its root from RAM, carried when the running kernel has them
/// as modules (a router kernel has them built in).
const TRIAL_MODULES: &[&str] = &["loop", "squashfs"];

/// What the trial system needs to know about its image, kept beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Description {
    pub id: String,
    pub board: String,
    pub image: String,
    pub target: String,
    pub sha256: String,
    pub size: u64,
    pub epoch: u64,
}

/// What `apply --try` loaded.
#[derive(Debug, Serialize)]
pub struct Tried {
    pub description: Description,
    pub root_offset: u64,
    pub kernel_format: &'static str,
    pub initramfs_bytes: u64,
    pub command_line: String,
    pub modules: Vec<String>,
}

/// Checks and stages the bundle from `input`, then loads the trial kernel for [`start`].
pub fn load(root: &DeviceRoot, input: &mut dyn Read, busybox: &Path) -> Result<Tried> {
    let cmdline = liminix_kexec::running_command_line(root.dir())?;
    if let Some(id) = marker(&cmdline) {
        return Err(TrialError::InTrial(id.to_owned()).into());
    }
    let mut input = BufReader::with_capacity(128 << 10, input);
    let header = Header::read(&mut input)?;
    let board = checks::check_header(root, &header)?;
    let m = &header.manifest;
    if board.strategy != Strategy::Raw {
        return Err(TrialError::Strategy {
            board: board.name.clone(),
            strategy: board.strategy.as_str().to_owned(),
        }
        .into());
    }
    let [entry] = m.images.as_slice() else {
        return Err(TrialError::ImageCount {
            count: m.images.len(),
        }
        .into());
    };
    let planned = StagedFile {
        name: entry.name.clone(),
        path: PathBuf::new(),
        sha256: entry.sha256_bytes(),
        size: entry.size,
    };
    let erase = precheck(root, &board, &planned)?;
    let staging = root.image_staging();
    let staged = crate::apply::bases::stage_on_device(root, &board, &mut input, m, &staging)?;
    let staged = staged
        .into_iter()
        .next()
        .ok_or(TrialError::ImageCount { count: 0 })?;
    let result = load_staged(root, &board, &staged, erase, m.epoch, busybox, &cmdline);
    // The initramfs holds its own copy now (or the trial was refused).
    let _ = std::fs::remove_file(&staged.path);
    result
}

/// `apply`'s checks of the target without its refusal of the running root's partition;
/// gives the erase block size.
fn precheck(root: &DeviceRoot, board: &Board, staged: &StagedFile) -> Result<u64> {
    let to = board
        .resolve(&staged.name, None)
        .map_err(ApplyError::from)?;
    let erase = match &to.place {
        Place::Raw { chip, .. } => chip.erase_size,
        Place::Ubi { .. } => {
            return Err(TrialError::Strategy {
                board: board.name.clone(),
                strategy: "a UBI volume".into(),
            }
            .into())
        }
    };
    let jobs = [Job { image: staged, to }];
    match image::precheck(board, &mut RealDevices::new(root), &jobs, false) {
        Ok(()) | Err(AgentError::Apply(ApplyError::InUse { .. })) => Ok(erase),
        Err(e) => Err(e),
    }
}

fn load_staged(
    root: &DeviceRoot,
    board: &Board,
    staged: &StagedFile,
    erase: u64,
    epoch: u64,
    busybox: &Path,
    cmdline: &str,
) -> Result<Tried> {
    let data = std::fs::read(&staged.path).map_err(AgentError::io("reading", &staged.path))?;
    let (kernel, format) = kernel_of(&staged.name, &data)?;
    let root_offset = root_offset(&staged.name, &data, erase)?;
    let sha = hex::encode(staged.sha256);
    let id = sha[..ID_LEN].to_owned();
    let target = board
        .resolve(&staged.name, None)
        .map_err(ApplyError::from)?
        .target
        .to_owned();
    let description = Description {
        id: id.clone(),
        board: board.name.clone(),
        image: staged.name.clone(),
        target,
        sha256: sha,
        size: staged.size,
        epoch,
    };
    drop(data);
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let carried = carry::from_system(root.dir(), &release, TRIAL_MODULES)
        .map_err(crate::levitate::LevitateError::from)?;
    let parts = TrialParts {
        busybox: busybox.to_path_buf(),
        applets: liminix_recovery::root::applets(busybox),
        firmware: staged.path.clone(),
        root_offset,
        id: label(&description),
        description: serde_json::to_vec_pretty(&description).expect("serialises"),
        carried,
    };
    let tree = initramfs::build(&parts).map_err(crate::levitate::LevitateError::from)?;
    // Uncompressed: the image is compressed already, and the kernel unpacks it sooner.
    let archive = liminix_recovery::cpio::write(&tree, 0, Vec::new())
        .map_err(crate::levitate::LevitateError::from)?;
    // The archive in the kernel's hands, then unpacked, then moved to the trial's tmpfs.
    let needed = (archive.len() as u64).saturating_mul(3);
    crate::levitate::check_ram(root, needed)?;
    let command_line = with_marker(cmdline, &id);
    let spec = liminix_kexec::BootSpec {
        kernel,
        initramfs: Some(archive.clone()),
        command_line: command_line.clone(),
    };
    let loaded = liminix_kexec::load(root.dir(), &spec)?;
    drop(loaded);
    Ok(Tried {
        description,
        root_offset,
        kernel_format: format,
        initramfs_bytes: archive.len() as u64,
        command_line,
        modules: parts.carried.modules.clone(),
    })
}

/// How the trial calls itself in console and log lines: `IMAGE@ID`.
fn label(d: &Description) -> String {
    format!("{}@{}", d.image, d.id)
}

/// Logs the trial and jumps into the kernel [`load`] loaded.
pub fn start(root: &DeviceRoot, tried: &Tried) -> Result<()> {
    crate::steplog::log(
        root,
        &format!(
            "trial of {}: kexec into the new kernel, flash untouched",
            label(&tried.description)
        ),
    );
    match liminix_kexec::execute_loaded() {
        Ok(never) => match never {},
        Err(e) => Err(e.into()),
    }
}

/// The kernel to kexec from an image that starts with a uImage: its payload where the loader
/// takes that format directly (x86 bzImage, ARM zImage, MIPS ELF), else the uImage itself
/// (MIPS: its load and entry addresses lay out the segments).
pub fn kernel_of(name: &str, data: &[u8]) -> Result<(Vec<u8>, &'static str)> {
    if !liminix_kexec::uimage::is_uimage(data) {
        return Err(TrialError::NoKernel {
            image: name.to_owned(),
        }
        .into());
    }
    let u = liminix_kexec::uimage::parse(data)?;
    let payload = u.payload()?;
    match liminix_kexec::detect(&payload) {
        Ok(f) if f != liminix_kexec::KernelFormat::UImage => Ok((payload, f.name())),
        _ => {
            let len = 64 + u.data.len();
            Ok((data[..len].to_vec(), "uImage"))
        }
    }
}

/// Where the squashfs root starts: the first erase block boundary after the kernel's uImage
/// that holds a squashfs superblock, as the boards' kernels split `rootfs` out of `firmware`.
fn root_offset(name: &str, data: &[u8], erase: u64) -> Result<u64> {
    let u = liminix_kexec::uimage::parse(data)?;
    let kernel_end = 64 + u.data.len() as u64;
    let erase = erase.max(1);
    let mut at = kernel_end.div_ceil(erase).saturating_mul(erase);
    while let Some(magic) = usize::try_from(at)
        .ok()
        .and_then(|a| data.get(a..a.checked_add(4)?))
    {
        if magic == b"hsqs" {
            return Ok(at);
        }
        at = at.saturating_add(erase);
    }
    Err(TrialError::NoRoot {
        image: name.to_owned(),
        kernel_end,
    }
    .into())
}

/// The image trial this system runs: the trial `/init` kept its description in RAM, and the
/// kernel's command line names it. A generation trial (`receive --try`) carries the same
/// command-line word but no description, and is not one.
pub fn running_trial(root: &DeviceRoot) -> Result<Option<String>> {
    if !root.join(TRIAL_DIR).join(DESCRIPTION).exists() {
        return Ok(None);
    }
    let cmdline = liminix_kexec::running_command_line(root.dir())?;
    Ok(marker(&cmdline).map(str::to_owned))
}

/// What `mark-good` did in a trial.
#[derive(Debug, Serialize)]
pub struct Committed {
    pub trial: String,
    pub image: ImageReport,
}

/// Writes the trial's image to the flash after checking it against its description again.
pub fn commit(root: &DeviceRoot, id: &str, progress: &mut dyn Progress) -> Result<Committed> {
    let dir = root.join(TRIAL_DIR);
    let desc_path = dir.join(DESCRIPTION);
    let missing = |detail: String| TrialError::NoDescription {
        marker: id.to_owned(),
        description: desc_path.clone(),
        detail,
    };
    let text = std::fs::read(&desc_path).map_err(|e| missing(e.to_string()))?;
    let d: Description = serde_json::from_slice(&text).map_err(|e| missing(e.to_string()))?;
    if d.id != id {
        return Err(TrialError::WrongTrial {
            description: desc_path,
            found: d.id,
            marker: id.to_owned(),
        }
        .into());
    }
    let path = dir.join(IMAGE);
    let sha256 = check_hash(&path, &d.sha256)?;
    let board = liminix_boards::for_device(root.dir(), &d.board).map_err(ApplyError::from)?;
    let staged = StagedFile {
        name: d.image.clone(),
        path,
        sha256,
        size: d.size,
    };
    let to = board
        .resolve(&staged.name, None)
        .map_err(ApplyError::from)?;
    let jobs = [Job { image: &staged, to }];
    let loc = JournalLocation::locate(root, None);
    let _lock = loc.lock()?;
    crate::steplog::log(
        root,
        &format!("trial of {}: confirmed, writing the flash", label(&d)),
    );
    let mut reports = image::write_all(
        root,
        &mut RealDevices::new(root),
        &jobs,
        &loc,
        false,
        progress,
    )?;
    checks::record_epoch(root, d.epoch)?;
    crate::steplog::log(
        root,
        &format!("trial of {}: confirmed, flash written", label(&d)),
    );
    Ok(Committed {
        trial: label(&d),
        image: reports.remove(0),
    })
}

/// The sha256 of `path`, refused unless it is `expected` (hex).
fn check_hash(path: &Path, expected: &str) -> Result<[u8; 32]> {
    let mut f = std::fs::File::open(path).map_err(AgentError::io("opening", path))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(AgentError::io("reading", path))?;
    let found: [u8; 32] = h.finalize().into();
    if hex::encode(found) != expected {
        return Err(TrialError::Changed {
            path: path.to_path_buf(),
            expected: expected.to_owned(),
            found: hex::encode(found),
        }
        .into());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A uImage made by `mkimage` around `payload`.
    fn mkimage(payload: &[u8]) -> Vec<u8> {
        let t = tempfile::tempdir().unwrap();
        let (input, out) = (t.path().join("payload"), t.path().join("uImage"));
        std::fs::write(&input, payload).unwrap();
        let status = Command::new("mkimage")
            .args(["-A", "x86", "-O", "linux", "-T", "kernel", "-C", "none"])
            .args(["-a", "0x100000", "-e", "0x100000", "-n", "t", "-d"])
            .arg(&input)
            .arg(&out)
            .status()
            .expect("mkimage (Debian package u-boot-tools)");
        assert!(status.success());
        std::fs::read(out).unwrap()
    }

    #[test]
    fn the_kernel_and_the_root_are_found_as_the_boards_split_them() {
        let mut bz = vec![0u8; 5000];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        let uimage = mkimage(&bz);
        let erase = 4096u64;
        let mut fw = uimage.clone();
        fw.resize(2 * erase as usize, 0xff);
        let (kernel, format) = kernel_of("firmware", &fw).unwrap();
        assert_eq!((kernel, format), (bz.clone(), "bzImage"));
        // No squashfs yet: refused with the kernel's end.
        let e = root_offset("firmware", &fw, erase).unwrap_err();
        assert!(e.to_string().contains("5064-byte kernel"), "{e}");
        fw.extend_from_slice(b"hsqs");
        fw.resize(3 * erase as usize, 0);
        assert_eq!(root_offset("firmware", &fw, erase).unwrap(), 2 * erase);
        // A payload the loader does not take itself stays a uImage.
        let raw = mkimage(b"vmlinux.bin of a MIPS router");
        let (kernel, format) = kernel_of("firmware", &raw).unwrap();
        assert_eq!((kernel, format), (raw.clone(), "uImage"));
        let e = kernel_of("firmware", b"hsqs and no kernel").unwrap_err();
        assert!(
            e.to_string().contains("does not start with a uImage"),
            "{e}"
        );
    }
}
