//! Recognising btrfs on a block device without mounting it: the primary superblock sits
//! 64 KiB into the device and carries the magic `_BHRfS_M` 64 bytes into it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::BtrfsError;

const SUPERBLOCK_OFFSET: u64 = 0x1_0000;
const MAGIC_OFFSET: u64 = 0x40;
const MAGIC: &[u8; 8] = b"_BHRfS_M";

/// Whether the device (or image file) at `path` holds a btrfs filesystem.
pub fn has_btrfs(path: &Path) -> Result<bool, BtrfsError> {
    let f = File::open(path).map_err(BtrfsError::io("opening", path))?;
    let mut magic = [0u8; 8];
    match f.read_exact_at(&mut magic, SUPERBLOCK_OFFSET + MAGIC_OFFSET) {
        Ok(()) => Ok(&magic == MAGIC),
        // Smaller than a superblock's place: no btrfs.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(BtrfsError::io("reading the superblock of", path)(e)),
    }
}
