//! Finding the board's btrfs (the one block device whose superblock says btrfs) and mounting
//! its top level (subvolume id 5), where `@` and the snapshots are entries.

use std::path::{Path, PathBuf};

use super::BtrfsRootError;
use crate::error::{AgentError, Result};
use crate::root::DeviceRoot;

/// The btrfs top level, mounted at the install mount point (`/dest`).
pub struct TopLevel {
    /// The mount point, as this process reaches it.
    pub dir: PathBuf,
    /// The block device (device path), or `None` when it was mounted already.
    pub device: Option<PathBuf>,
}

/// Mounts the top level of `device` (or of the one btrfs found) at the install mount point,
/// unless a btrfs is mounted there already.
pub fn mount(root: &DeviceRoot, device: Option<&Path>) -> Result<TopLevel> {
    let dir = root.install_mount();
    if dir.is_dir() && liminix_btrfs::is_subvolume(&dir).map_err(BtrfsRootError::from)? {
        return Ok(TopLevel { dir, device: None });
    }
    let device = match device {
        Some(d) => d.to_owned(),
        None => find(root)?,
    };
    let node = root.join(&device.to_string_lossy());
    if !liminix_btrfs::probe::has_btrfs(&node).map_err(BtrfsRootError::from)? {
        return Err(BtrfsRootError::NotBtrfs { device }.into());
    }
    std::fs::create_dir_all(&dir).map_err(AgentError::io("creating", &dir))?;
    rustix::mount::mount(
        &node,
        &dir,
        "btrfs",
        rustix::mount::MountFlags::empty(),
        c"subvolid=5",
    )
    .map_err(|e| BtrfsRootError::Mount {
        device: device.clone(),
        target: dir.clone(),
        source: e.into(),
    })?;
    Ok(TopLevel {
        dir,
        device: Some(device),
    })
}

/// The one block device (device path) holding btrfs.
fn find(root: &DeviceRoot) -> Result<PathBuf> {
    let class = root.block_class();
    let entries = std::fs::read_dir(&class).map_err(AgentError::io("listing", &class))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut found = Vec::new();
    for name in &names {
        let dev = PathBuf::from("/dev").join(name);
        // A device that cannot be read (an empty card reader) holds nothing to install on.
        if liminix_btrfs::probe::has_btrfs(&root.join(&dev.to_string_lossy())).unwrap_or(false) {
            found.push(dev);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(BtrfsRootError::NoFilesystem {
            dir: class,
            looked: names.join(", "),
        }
        .into()),
        _ => Err(BtrfsRootError::Ambiguous {
            found: found
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into()),
    }
}
