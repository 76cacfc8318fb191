//! UBIFS root filesystem images, made by `mkfs.ubifs` (mtd-utils) as Liminix does: UBIFS is
//! a log-structured filesystem with an index B+tree, LPT, orphan area and journal whose
//! on-flash layout is tied to the LEB size; a native writer would be a filesystem
//! implementation of its own, and the kernel is the only other reader. The build host runs it
//! with `-x favor_lzo -y --squash-uids` and a fixed `SOURCE_DATE_EPOCH` for reproducibility.

use std::path::Path;

/// The tool this module runs.
pub const TOOL: &str = "mkfs.ubifs";

/// The geometry mkfs.ubifs needs: the UBI device's min I/O unit, LEB size, and the most LEBs
/// the filesystem may grow to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UbifsSpec {
    pub min_io: u64,
    pub leb_size: u64,
    pub max_leb_count: u64,
    /// Timestamps in the image (SOURCE_DATE_EPOCH).
    pub epoch: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UbifsError {
    #[error("ubifs image: {0}")]
    Skeleton(String),
}

/// Writes a UBIFS image of the tree `src` to `out`.
pub fn write(src: &Path, spec: &UbifsSpec, out: &Path) -> Result<(), UbifsError> {
    todo!("issue 12 skeleton: {src:?} {spec:?} {out:?}")
}
