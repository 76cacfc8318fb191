//! ext4 root images (the Omnia's recovery stick, which its U-Boot reads with distro boot), made
//! by `mke2fs -d` (e2fsprogs) as Liminix's ext4fs output does. For the same bytes from the same
//! tree: the staged tree's times are set to the epoch first, the UUID and directory hash seed
//! come from the tree, `E2FSPROGS_FAKE_TIME` fixes the superblock and creation times, and the
//! inode change times — which mke2fs 1.47.0 copies from the staging copy and nothing can set
//! there — are rewritten to the epoch by `debugfs` afterwards.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};
use sha2::{Digest, Sha256};

use super::{io_err, BuildError};

pub const MKE2FS: &str = "mke2fs";
pub const DEBUGFS: &str = "debugfs";

/// Paths under `tree` (relative, sorted), and the bytes the files take in 4 KiB blocks.
fn entries(tree: &Path) -> Result<(Vec<String>, u64), BuildError> {
    let mut paths = Vec::new();
    let mut bytes = 0u64;
    let mut stack = vec![tree.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let p = e.map_err(io_err("listing", &dir))?.path();
            let meta = fs::symlink_metadata(&p).map_err(io_err("reading", &p))?;
            bytes = bytes.saturating_add(meta.size().div_ceil(4096) * 4096 + 4096);
            if meta.is_dir() {
                stack.push(p.clone());
            }
            let rel = p.strip_prefix(tree).unwrap_or(&p).to_string_lossy();
            if rel.contains(['"', '\n']) {
                return Err(BuildError::Ext4(format!(
                    "{rel:?}: debugfs cannot name a path with a quote or a newline"
                )));
            }
            paths.push(format!("/{rel}"));
        }
    }
    paths.sort();
    Ok((paths, bytes))
}

fn set_times(tree: &Path, paths: &[String], epoch: u64) -> Result<(), BuildError> {
    let t = Timespec {
        tv_sec: i64::try_from(epoch).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    for rel in paths.iter().map(String::as_str).chain(["/"]) {
        let p = tree.join(rel.trim_start_matches('/'));
        rustix::fs::utimensat(CWD, &p, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_err("setting the times of", &p)(e.into()))?;
    }
    Ok(())
}

fn uuid(paths: &[String], epoch: u64) -> String {
    let mut h = Sha256::new();
    h.update(epoch.to_be_bytes());
    for p in paths {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = hex::encode(&h.finalize()[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &d[..8],
        &d[8..12],
        &d[12..16],
        &d[16..20],
        &d[20..32]
    )
}

fn run(cmd: &mut Command, tool: &str) -> Result<(), BuildError> {
    let done = cmd
        .output()
        .map_err(|e| BuildError::Ext4(format!("cannot run {tool} (install e2fsprogs): {e}")))?;
    if !done.status.success() {
        return Err(BuildError::Ext4(format!(
            "{tool} failed ({}): {}",
            done.status,
            String::from_utf8_lossy(&done.stderr).trim()
        )));
    }
    Ok(())
}

/// Writes the ext4 image of `tree` to `out`, sized to the tree with a quarter and 16 MiB to spare.
pub fn write(tree: &Path, epoch: u64, out: &Path) -> Result<(), BuildError> {
    let (paths, bytes) = entries(tree)?;
    set_times(tree, &paths, epoch)?;
    let size_mib = (bytes / 4 * 5).div_ceil(1 << 20) + 16;
    let id = uuid(&paths, epoch);
    let fake = epoch.to_string();
    run(
        Command::new(MKE2FS)
            .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-U", &id])
            .arg("-E")
            .arg(format!(
                "root_owner=0:0,hash_seed={id},lazy_itable_init=0,lazy_journal_init=0"
            ))
            .arg("-d")
            .arg(tree)
            .arg(out)
            .arg(format!("{size_mib}M"))
            .env("E2FSPROGS_FAKE_TIME", &fake),
        MKE2FS,
    )?;
    let mut script = String::new();
    for p in paths.iter().map(String::as_str).chain(["/", "/lost+found"]) {
        script.push_str(&format!("sif \"{p}\" ctime @{epoch}\n"));
    }
    let cmds = out.with_extension("debugfs");
    fs::write(&cmds, script).map_err(io_err("writing", &cmds))?;
    let r = run(
        Command::new(DEBUGFS)
            .arg("-w")
            .arg("-f")
            .arg(&cmds)
            .arg(out)
            .env("E2FSPROGS_FAKE_TIME", &fake),
        DEBUGFS,
    );
    let _ = fs::remove_file(&cmds);
    r
}
