//! MBR disk images: a root partition at a 1 MiB-aligned start with room to grow after the root
//! filesystem (Liminix's own mbrimage sized the partition to the image exactly, leaving none), and
//! optionally a second, empty partition after it.
//!
//! Written natively rather than through an MBR crate: the table is four fixed 16-byte entries and
//! a signature in one sector, so a crate would add a dependency for less code than its glue needs,
//! and the reproducibility rules (disk identifier, zeroed boot code) stay in plain sight here.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Bytes per sector; MBR addresses in sectors of this size.
pub const SECTOR: u64 = 512;
/// Partition starts and lengths are rounded to this, as current partitioning tools do, so that
/// partitions sit on erase-block and RAID-stripe boundaries of any underlying storage.
pub const ALIGN: u64 = 1 << 20;

/// Partition type of both partitions: "Linux".
const TYPE_LINUX: u8 = 0x83;
/// Boot flag of the root partition: BIOS loaders that look for an active partition find it.
const ACTIVE: u8 = 0x80;
const TABLE_OFFSET: usize = 446;
const DISK_ID_OFFSET: usize = 440;
const ENTRY_LEN: usize = 16;

/// What the disk holds besides the root image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MbrSpec {
    /// Size of the whole disk image in bytes; a multiple of [`SECTOR`].
    pub disk_size: u64,
    /// Free bytes inside the root partition after the root image, for the filesystem to grow into.
    pub root_free: u64,
    /// Size of a second, empty partition placed after the root one, if any.
    pub second: Option<u64>,
    /// Seeds the disk identifier together with the inputs; the caller passes
    /// [`super::timestamp`] (`SOURCE_DATE_EPOCH`).
    pub epoch: Option<u64>,
}

/// One partition of the table, in sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub start: u64,
    pub sectors: u64,
}

/// Where everything lands on the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MbrLayout {
    pub root: Partition,
    pub second: Option<Partition>,
    pub disk_id: u32,
}

/// The layout as `inspect` shows it: the identifier, then one line per partition in sectors,
/// in the terms `sfdisk --dump` uses so the two can be compared by eye.
impl std::fmt::Display for MbrLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "label: dos, label-id: 0x{:08x}", self.disk_id)?;
        let (r, bytes) = (self.root, self.root.sectors * SECTOR);
        write!(
            f,
            "1: start={}, size={} ({bytes} bytes), type=83, bootable",
            r.start, r.sectors
        )?;
        if let Some(p) = self.second {
            let bytes = p.sectors * SECTOR;
            write!(
                f,
                "\n2: start={}, size={} ({bytes} bytes), type=83",
                p.start, p.sectors
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MbrError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("disk size {0} is not a multiple of {SECTOR} bytes")]
    UnalignedDisk(u64),
    #[error(
        "the partitions need {needed} bytes (root image {root} bytes + {free} free, aligned to 1 MiB{second}) \
         but the disk is {disk} bytes"
    )]
    DoesNotFit {
        needed: u64,
        root: u64,
        free: u64,
        second: String,
        disk: u64,
    },
    #[error("an MBR addresses at most 2^32 sectors (2 TiB); the disk is {0} bytes")]
    TooLargeForMbr(u64),
}

fn round_up(bytes: u64) -> u64 {
    bytes.div_ceil(ALIGN) * ALIGN
}

/// Places the partitions for a root image of `root_len` bytes, refusing a disk they do not fit.
pub fn plan(spec: &MbrSpec, root_len: u64, disk_id: u32) -> Result<MbrLayout, MbrError> {
    if !spec.disk_size.is_multiple_of(SECTOR) {
        return Err(MbrError::UnalignedDisk(spec.disk_size));
    }
    if spec.disk_size / SECTOR > u64::from(u32::MAX) {
        return Err(MbrError::TooLargeForMbr(spec.disk_size));
    }
    let root_bytes = round_up(root_len.saturating_add(spec.root_free));
    let second_bytes = spec.second.map(round_up);
    let needed = ALIGN + root_bytes + second_bytes.unwrap_or(0);
    if needed > spec.disk_size {
        return Err(MbrError::DoesNotFit {
            needed,
            root: root_len,
            free: spec.root_free,
            second: spec
                .second
                .map(|s| format!(" + second partition {s} bytes"))
                .unwrap_or_default(),
            disk: spec.disk_size,
        });
    }
    let root = Partition {
        start: ALIGN / SECTOR,
        sectors: root_bytes / SECTOR,
    };
    let second = second_bytes.map(|bytes| Partition {
        start: root.start + root.sectors,
        sectors: bytes / SECTOR,
    });
    Ok(MbrLayout {
        root,
        second,
        disk_id,
    })
}

/// A disk identifier that depends only on the inputs: the root image's digest, the layout asked
/// for and the epoch. Zero is skipped because some tools treat it as "no identifier".
fn disk_id(root_digest: &[u8], spec: &MbrSpec) -> u32 {
    let mut h = Sha256::new();
    h.update(b"liminix mbr disk id\0");
    h.update(root_digest);
    h.update(spec.disk_size.to_le_bytes());
    h.update(spec.root_free.to_le_bytes());
    h.update(spec.second.map_or([0xff; 8], u64::to_le_bytes));
    h.update(spec.epoch.map_or([0xff; 8], u64::to_le_bytes));
    let d = h.finalize();
    let id = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
    id.max(1)
}

/// Cylinder/head/sector of an LBA in the 255-head, 63-sector geometry every current tool assumes,
/// saturated at the largest encodable address for sectors past cylinder 1023.
fn chs(lba: u64) -> [u8; 3] {
    const HEADS: u64 = 255;
    const SECTORS: u64 = 63;
    let c = lba / (HEADS * SECTORS);
    if c > 1023 {
        return [0xfe, 0xff, 0xff];
    }
    let h = (lba / SECTORS) % HEADS;
    let s = lba % SECTORS + 1;
    // The sector field keeps the two high bits of the 10-bit cylinder.
    [
        h as u8,
        (s as u8) | (((c >> 2) & 0xc0) as u8),
        (c & 0xff) as u8,
    ]
}

fn entry(p: Partition, boot: u8) -> [u8; ENTRY_LEN] {
    let mut e = [0u8; ENTRY_LEN];
    e[0] = boot;
    e[1..4].copy_from_slice(&chs(p.start));
    e[4] = TYPE_LINUX;
    e[5..8].copy_from_slice(&chs(p.start + p.sectors - 1));
    // plan() keeps every sector number below 2^32.
    e[8..12].copy_from_slice(&(p.start as u32).to_le_bytes());
    e[12..16].copy_from_slice(&(p.sectors as u32).to_le_bytes());
    e
}

/// The first sector: zeroed boot code (the image boots through firmware that reads partitions,
/// not through MBR code), the disk identifier, the table and the 0x55AA signature.
pub fn boot_sector(layout: &MbrLayout) -> [u8; SECTOR as usize] {
    let mut s = [0u8; SECTOR as usize];
    s[DISK_ID_OFFSET..DISK_ID_OFFSET + 4].copy_from_slice(&layout.disk_id.to_le_bytes());
    let mut at = TABLE_OFFSET;
    s[at..at + ENTRY_LEN].copy_from_slice(&entry(layout.root, ACTIVE));
    at += ENTRY_LEN;
    if let Some(p) = layout.second {
        s[at..at + ENTRY_LEN].copy_from_slice(&entry(p, 0));
    }
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

fn digest_file(path: &Path) -> Result<(Vec<u8>, u64), MbrError> {
    let err = |source| MbrError::Io {
        what: "reading root image",
        path: path.to_owned(),
        source,
    };
    let mut f = File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let len = io::copy(&mut f, &mut h).map_err(err)?;
    Ok((h.finalize().to_vec(), len))
}

/// Writes the disk image `out` holding `root` in its first partition, and returns the layout.
/// Unwritten space is left as holes, which read as the zeros the image needs.
pub fn write(root: &Path, spec: &MbrSpec, out: &Path) -> Result<MbrLayout, MbrError> {
    let (digest, root_len) = digest_file(root)?;
    let layout = plan(spec, root_len, disk_id(&digest, spec))?;
    let err = |source| MbrError::Io {
        what: "writing disk image",
        path: out.to_owned(),
        source,
    };
    let mut disk = File::create(out).map_err(err)?;
    disk.set_len(spec.disk_size).map_err(err)?;
    disk.write_all(&boot_sector(&layout)).map_err(err)?;
    disk.seek(SeekFrom::Start(layout.root.start * SECTOR))
        .map_err(err)?;
    let mut src = File::open(root).map_err(|source| MbrError::Io {
        what: "reading root image",
        path: root.to_owned(),
        source,
    })?;
    let copied = io::copy(&mut src, &mut disk).map_err(err)?;
    if copied != root_len {
        return Err(err(io::Error::other(format!(
            "root image changed while copying: {copied} bytes, expected {root_len}"
        ))));
    }
    disk.sync_all().map_err(err)?;
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chs_of_first_aligned_sector() {
        // LBA 2048 = cylinder 0, head 32, sector 33 in the 255/63 geometry.
        assert_eq!(chs(2048), [32, 33, 0]);
        assert_eq!(chs(0), [0, 1, 0]);
        assert_eq!(chs(1024 * 255 * 63), [0xfe, 0xff, 0xff]);
    }

    #[test]
    fn chs_keeps_high_cylinder_bits_in_sector_byte() {
        // Cylinder 768 = 0b11_0000_0000: both high bits go to the top of byte 1.
        let lba = 768 * 255 * 63;
        assert_eq!(chs(lba), [0, 0xc1, 0]);
    }

    #[test]
    fn refuses_root_larger_than_disk() {
        let spec = MbrSpec {
            disk_size: 4 * ALIGN,
            root_free: 0,
            second: None,
            epoch: None,
        };
        let e = plan(&spec, 3 * ALIGN + 1, 1).unwrap_err();
        assert!(matches!(e, MbrError::DoesNotFit { needed, .. } if needed == 5 * ALIGN));
        assert!(plan(&spec, 3 * ALIGN, 1).is_ok());
    }

    #[test]
    fn refuses_disks_an_mbr_cannot_describe() {
        let mut spec = MbrSpec {
            disk_size: 8 * ALIGN + 1,
            root_free: 0,
            second: None,
            epoch: None,
        };
        assert!(matches!(plan(&spec, 1, 1), Err(MbrError::UnalignedDisk(_))));
        spec.disk_size = (u64::from(u32::MAX) + 1) * SECTOR;
        assert!(matches!(
            plan(&spec, 1, 1),
            Err(MbrError::TooLargeForMbr(_))
        ));
        spec.disk_size -= SECTOR;
        assert!(plan(&spec, 1, 1).is_ok());
    }

    #[test]
    fn display_lists_the_partitions() {
        let spec = MbrSpec {
            disk_size: 8 * ALIGN,
            root_free: 0,
            second: Some(ALIGN),
            epoch: None,
        };
        let layout = plan(&spec, 100, 0xdead_beef).unwrap();
        assert_eq!(
            layout.to_string(),
            "label: dos, label-id: 0xdeadbeef\n\
             1: start=2048, size=2048 (1048576 bytes), type=83, bootable\n\
             2: start=4096, size=2048 (1048576 bytes), type=83"
        );
    }

    #[test]
    fn disk_id_follows_inputs() {
        let mut spec = MbrSpec {
            disk_size: 8 * ALIGN,
            root_free: ALIGN,
            second: None,
            epoch: Some(1),
        };
        let a = disk_id(b"root", &spec);
        assert_eq!(a, disk_id(b"root", &spec));
        assert_ne!(a, disk_id(b"other", &spec));
        spec.epoch = Some(2);
        assert_ne!(a, disk_id(b"root", &spec));
    }
}
