//! Is a raw MTD partition in use by the running system? Writing a partition while a
//! filesystem is mounted from it, or from any partition sharing its bytes, pulls the data
//! from under the kernel: on the NOR boards `rootfs` lies inside `firmware`, so writing
//! `firmware` rewrites the mounted root.
//!
//! A partition counts as used when a mount of this process's table ([`mount_table`]) is on
//! it or on an MTD device overlapping it, through
//! - its mtdblock: the mount's `major:minor` is 31:N (which also catches a root the kernel
//!   mounted from `root=/dev/mtdblockN` and lists as `/dev/root`), or the source names
//!   `mtdblockN`;
//! - its name: `mtdN` or `mtd:NAME` (jffs2 and others mount MTD devices by name);
//! - UBI: a volume (`ubiX_Y`, `ubiX:NAME`, `ubi:NAME`, `ubiY` for device 0) or a ubiblock
//!   device (source, or its `major:minor` from `ROOT/sys/class/block/ubiblockX_Y/dev`) of a
//!   UBI device attached to it.
//!
//! Overlap comes from sysfs ([`liminix_mtd::sysfs::placement`]): a partition's `offset` is
//! relative to the device it was split from, which sysfs names only when it nests the
//! partition under it. Top-level partitions sit beside their master, and drivers without a
//! device of their own (block2mtd, nandsim, mtdram) all share `devices/virtual/mtd`: there
//! devices of the same geometry are taken to be on one chip, so a false refusal is possible
//! between two such chips, a missed overlap is not ([`InUse::assumed`] says when).

use std::path::{Path, PathBuf};

use liminix_mtd::sysfs::{self, MtdSysEntry, Placement};

use crate::mounts::{mount_table, Mount};

/// Block major of mtdblock (and mtdblock_ro) devices; the minor is the MTD index.
const MTDBLOCK_MAJOR: u32 = 31;
/// Nesting deeper than this is a sysfs loop, not a partition tree.
const MAX_DEPTH: usize = 16;

/// A mount that uses the partition to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    pub mount_point: String,
    /// The mount's source as the mount table names it.
    pub source: String,
    /// The MTD device it is mounted from: the partition itself or one sharing bytes with it.
    pub mtd: u32,
    pub mtd_name: String,
    /// Sysfs does not say the two are on one chip; they were taken to be (see the module docs).
    pub assumed: bool,
}

/// Why the check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InUseError {
    #[error("cannot read the mount table below {root}: {source}")]
    Mounts {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot tell which partitions share bytes with mtd{index}: {source}")]
    Sysfs {
        index: u32,
        #[source]
        source: liminix_mtd::MtdError,
    },
}

/// The first mount that uses MTD device `index` (see the module docs), if any.
pub fn partition_in_use(root: &Path, index: u32) -> Result<Option<InUse>, InUseError> {
    let sys = |source| InUseError::Sysfs { index, source };
    let mounts = mount_table(root).map_err(|source| InUseError::Mounts {
        root: root.to_path_buf(),
        source,
    })?;
    let devices = sysfs::list(root).map_err(sys)?;
    let spans = devices
        .iter()
        .map(|d| span(root, d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(sys)?;
    let Some(target) = spans.iter().find(|s| s.index == index) else {
        return Ok(None);
    };
    // The target itself first, so the message names the most direct use.
    let mut sharing: Vec<(&Span, bool)> = spans
        .iter()
        .filter_map(|s| target.shares_with(s).map(|assumed| (s, assumed)))
        .collect();
    sharing.sort_by_key(|(s, _)| s.index != index);
    for (s, assumed) in sharing {
        let ubi = UbiUse::of(root, s.index);
        if let Some(m) = mounts.iter().find(|m| s.mounted_by(m, &ubi)) {
            return Ok(Some(InUse {
                mount_point: m.mount_point.clone(),
                source: m.source.clone(),
                mtd: s.index,
                mtd_name: s.name.clone(),
                assumed,
            }));
        }
    }
    Ok(None)
}

/// An MTD device's bytes on its chip.
#[derive(Debug)]
struct Span {
    index: u32,
    name: String,
    start: u64,
    end: u64,
    /// The outermost device of its nesting chain.
    top: u32,
    /// `top` has no offset: it is the chip itself.
    top_is_master: bool,
    /// Devices with different keys are on different chips.
    chip_key: String,
}

fn span(root: &Path, d: &MtdSysEntry) -> Result<Span, liminix_mtd::MtdError> {
    let mut at = sysfs::placement(root, d.index)?;
    let (mut start, mut top) = (at.offset.unwrap_or(0), d.index);
    for _ in 0..MAX_DEPTH {
        let Some(parent) = at.parent else { break };
        at = sysfs::placement(root, parent)?;
        start = start.saturating_add(at.offset.unwrap_or(0));
        top = parent;
    }
    let Placement { offset, dir, .. } = at;
    Ok(Span {
        index: d.index,
        name: d.name.clone(),
        start,
        end: start.saturating_add(d.size),
        top,
        top_is_master: offset.is_none(),
        chip_key: format!(
            "{dir} {} {} {} {}",
            d.kind, d.erase_size, d.write_size, d.oob_size
        ),
    })
}

impl Span {
    /// Whether `o` shares bytes with `self`: `Some(assumed)` if it does or may.
    fn shares_with(&self, o: &Span) -> Option<bool> {
        if o.index == self.index {
            return Some(false);
        }
        let same_tree = o.top == self.top;
        let two_chips = self.top_is_master && o.top_is_master;
        if !same_tree && (two_chips || o.chip_key != self.chip_key) {
            return None;
        }
        let overlap = o.start < self.end && self.start < o.end;
        // In one chip's directory the top-level partitions are that chip's; only the
        // drivers' shared `virtual` directory leaves it open.
        let assumed = !same_tree && o.chip_key.contains("virtual/mtd ");
        overlap.then_some(assumed)
    }

    fn mounted_by(&self, m: &Mount, ubi: &UbiUse) -> bool {
        if m.dev == Some((MTDBLOCK_MAJOR, self.index)) {
            return true;
        }
        let src = m.source.strip_prefix("/dev/").unwrap_or(&m.source);
        let i = self.index.to_string();
        let by_name = src.strip_prefix("mtdblock") == Some(&i)
            || src.strip_prefix("mtd") == Some(&i)
            || src.strip_prefix("mtd:") == Some(&self.name);
        by_name || ubi.mounted_by(m)
    }
}

/// The UBI devices attached to one MTD device, and their ubiblock devices' numbers.
struct UbiUse {
    devices: Vec<u32>,
    blocks: Vec<(u32, u32)>,
}

impl UbiUse {
    fn of(root: &Path, mtd: u32) -> UbiUse {
        let devices: Vec<u32> = liminix_ubi::sysfs::devices(root)
            .unwrap_or_default()
            .into_iter()
            .filter(|&n| liminix_ubi::sysfs::device_info(root, n).is_ok_and(|i| i.mtd_num == mtd))
            .collect();
        let blocks = devices
            .iter()
            .flat_map(|&n| ubiblock_numbers(root, n))
            .collect();
        UbiUse { devices, blocks }
    }

    fn mounted_by(&self, m: &Mount) -> bool {
        if m.dev.is_some_and(|d| self.blocks.contains(&d)) {
            return true;
        }
        ubi_device_of(&m.source).is_some_and(|n| self.devices.contains(&n))
    }
}

/// The UBI device a mount source names, in any form UBIFS or ubiblock accepts.
fn ubi_device_of(source: &str) -> Option<u32> {
    let src = source.strip_prefix("/dev/").unwrap_or(source);
    let rest = src
        .strip_prefix("ubiblock")
        .or_else(|| src.strip_prefix("ubi"))?;
    if let Some((dev, _)) = rest.split_once([':', '!', '_']) {
        // `ubi:NAME` is device 0, as UBIFS reads it.
        return if dev.is_empty() {
            Some(0)
        } else {
            dev.parse().ok()
        };
    }
    // `ubiY` is volume Y of device 0.
    rest.parse::<u32>().ok().map(|_| 0)
}

/// `major:minor` of each `ubiblockN_*` device in `ROOT/sys/class/block`.
fn ubiblock_numbers(root: &Path, ubi: u32) -> Vec<(u32, u32)> {
    let dir = root.join("sys/class/block");
    let prefix = format!("ubiblock{ubi}_");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("dev")).ok()?;
            let (a, b) = text.trim().split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
#[path = "in_use_tests.rs"]
mod tests;
