//! MTD devices as `/sys/class/mtd` describes them, under an injectable root so
//! tests and chroots need no real `/sys`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::MtdError;

/// One `ROOT/sys/class/mtd/mtdN` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtdSysEntry {
    pub index: u32,
    pub name: String,
    /// `nor`, `nand`, `mlc-nand`, `ram`, `rom`, `ubi`, …
    pub kind: String,
    /// Bytes (64-bit, unlike MEMGETINFO).
    pub size: u64,
    pub erase_size: u32,
    pub write_size: u32,
    pub oob_size: u32,
}

fn class_dir(root: &Path) -> PathBuf {
    root.join("sys/class/mtd")
}

fn read_attr(dir: &Path, attr: &str) -> Result<String, MtdError> {
    let path = dir.join(attr);
    let raw = fs::read_to_string(&path).map_err(|source| MtdError::Sysfs { path, source })?;
    Ok(raw.trim_end_matches('\n').to_string())
}

fn read_num<T: std::str::FromStr>(dir: &Path, attr: &str) -> Result<T, MtdError> {
    let value = read_attr(dir, attr)?;
    value.trim().parse().map_err(|_| MtdError::SysfsParse {
        path: dir.join(attr),
        value,
    })
}

/// Index of an `mtdN` directory name; `None` for `mtdNro` and anything else.
fn index_of(dir_name: &str) -> Option<u32> {
    dir_name.strip_prefix("mtd")?.parse().ok()
}

fn entry(root: &Path, index: u32) -> Result<MtdSysEntry, MtdError> {
    let dir = class_dir(root).join(format!("mtd{index}"));
    Ok(MtdSysEntry {
        index,
        name: read_attr(&dir, "name")?,
        kind: read_attr(&dir, "type")?,
        size: read_num(&dir, "size")?,
        erase_size: read_num(&dir, "erasesize")?,
        write_size: read_num(&dir, "writesize")?,
        oob_size: read_num(&dir, "oobsize")?,
    })
}

/// All MTD devices, sorted by index. A missing class directory (no MTD support
/// loaded) is an empty list, not an error.
pub fn list(root: &Path) -> Result<Vec<MtdSysEntry>, MtdError> {
    let dir = class_dir(root);
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(MtdError::Sysfs { path: dir, source }),
    };
    let mut indices: Vec<u32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| index_of(&e.file_name().to_string_lossy()))
        .collect();
    indices.sort_unstable();
    indices.into_iter().map(|i| entry(root, i)).collect()
}

/// The device whose partition name is exactly `name`.
pub fn find_by_name(root: &Path, name: &str) -> Result<MtdSysEntry, MtdError> {
    list(root)?
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| MtdError::NotFound(name.to_string()))
}

/// Where an MTD device sits, as far as sysfs tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Bytes from the start of the device it was split from; `None` for a master
    /// (the kernel gives only partitions an `offset` attribute).
    pub offset: Option<u64>,
    /// The MTD device this one was split from, when sysfs nests it there: always for a
    /// partition of a partition, and for every partition with
    /// `CONFIG_MTD_PARTITIONED_MASTER`.
    pub parent: Option<u32>,
    /// The sysfs directory an unnested device sits in: its chip's device, or
    /// `devices/virtual/mtd` for drivers without one (block2mtd, nandsim, mtdram). The
    /// top-level partitions of one chip share it, but so do unrelated virtual devices.
    pub dir: String,
}

/// [`Placement`] of `mtdN`, from its `offset` attribute and where its class link points.
/// A class entry that is not a link (a captured tree) counts as unnested.
pub fn placement(root: &Path, index: u32) -> Result<Placement, MtdError> {
    let entry = class_dir(root).join(format!("mtd{index}"));
    let offset = match fs::metadata(entry.join("offset")) {
        Ok(_) => Some(read_num(&entry, "offset")?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            let path = entry.join("offset");
            return Err(MtdError::Sysfs { path, source });
        }
    };
    let link = match fs::read_link(&entry) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => PathBuf::new(),
        Err(source) => {
            return Err(MtdError::Sysfs {
                path: entry,
                source,
            })
        }
    };
    let up = link.parent().unwrap_or(Path::new(""));
    let parent = up
        .file_name()
        .and_then(|n| index_of(&n.to_string_lossy()))
        .filter(|&p| p != index);
    let dir = match parent {
        Some(_) => String::new(),
        None => up.to_string_lossy().into_owned(),
    };
    Ok(Placement {
        offset,
        parent,
        dir,
    })
}

/// Maps a user's device spec to `ROOT/dev/mtdN`.
///
/// Accepts `/dev/mtdN`, `mtdN`, `/dev/mtdblockN`, `mtdblockN` and `mtd:NAME`.
/// Numeric forms are checked against sysfs so a typo fails here, not at open.
pub fn resolve_device(root: &Path, spec: &str) -> Result<PathBuf, MtdError> {
    let index = if let Some(name) = spec.strip_prefix("mtd:") {
        find_by_name(root, name)?.index
    } else {
        let base = spec.strip_prefix("/dev/").unwrap_or(spec);
        let num = base
            .strip_prefix("mtdblock")
            .or_else(|| base.strip_prefix("mtd"));
        let index = num.and_then(|n| n.parse::<u32>().ok());
        let index = index.ok_or_else(|| MtdError::NotFound(spec.to_string()))?;
        if !class_dir(root).join(format!("mtd{index}")).is_dir() {
            return Err(MtdError::NotFound(spec.to_string()));
        }
        index
    };
    Ok(root.join(format!("dev/mtd{index}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_mtd(root: &Path, dir: &str, name: &str, kind: &str, size: u64, eb: u32, ws: u32) {
        let d = class_dir(root).join(dir);
        fs::create_dir_all(&d).unwrap();
        let attrs = [
            ("name", name.to_string()),
            ("type", kind.to_string()),
            ("size", size.to_string()),
            ("erasesize", eb.to_string()),
            ("writesize", ws.to_string()),
            (
                "oobsize",
                if kind == "nand" { "64" } else { "0" }.to_string(),
            ),
        ];
        for (k, v) in attrs {
            fs::write(d.join(k), format!("{v}\n")).unwrap();
        }
    }

    fn fixture() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fake_mtd(t.path(), "mtd0", "u-boot", "nor", 0x40000, 0x10000, 1);
        fake_mtd(t.path(), "mtd0ro", "u-boot", "nor", 0x40000, 0x10000, 1);
        fake_mtd(t.path(), "mtd10", "ubi", "nand", 0x10000000, 0x20000, 2048);
        fake_mtd(t.path(), "mtd2", "firmware", "nor", 5 << 32, 0x10000, 1);
        t
    }

    #[test]
    fn lists_numerically_and_skips_ro_nodes() {
        let t = fixture();
        let all = list(t.path()).unwrap();
        let idx: Vec<u32> = all.iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![0, 2, 10]);
        assert_eq!(all[1].size, 5 << 32);
        assert_eq!(all[2].kind, "nand");
        assert_eq!(all[2].oob_size, 64);
        assert_eq!(all[2].write_size, 2048);
    }

    #[test]
    fn missing_class_is_empty() {
        let t = tempfile::tempdir().unwrap();
        assert!(list(t.path()).unwrap().is_empty());
    }

    #[test]
    fn resolves_every_spelling() {
        let t = fixture();
        let r = t.path();
        assert_eq!(resolve_device(r, "/dev/mtd2").unwrap(), r.join("dev/mtd2"));
        assert_eq!(resolve_device(r, "mtd10").unwrap(), r.join("dev/mtd10"));
        assert_eq!(
            resolve_device(r, "/dev/mtdblock2").unwrap(),
            r.join("dev/mtd2")
        );
        assert_eq!(resolve_device(r, "mtd:ubi").unwrap(), r.join("dev/mtd10"));
        assert!(matches!(
            resolve_device(r, "mtd:nope"),
            Err(MtdError::NotFound(_))
        ));
        assert!(matches!(
            resolve_device(r, "/dev/mtd7"),
            Err(MtdError::NotFound(_))
        ));
        assert!(matches!(
            resolve_device(r, "/dev/sda"),
            Err(MtdError::NotFound(_))
        ));
    }

    #[test]
    fn garbage_attribute_is_a_parse_error() {
        let t = fixture();
        fs::write(class_dir(t.path()).join("mtd0/size"), "lots\n").unwrap();
        let err = list(t.path()).unwrap_err();
        assert!(matches!(err, MtdError::SysfsParse { .. }), "{err}");
    }

    #[test]
    fn placement_from_offset_and_link() {
        let t = fixture();
        let class = class_dir(t.path());
        // What a 6.1 kernel shows for block2mtd with a partition added by BLKPG (unnested,
        // beside its master) and for a partition split out of another (nested).
        let virt = t.path().join("sys/devices/virtual/mtd");
        fs::create_dir_all(virt.join("mtd5/mtd6")).unwrap();
        fs::create_dir_all(virt.join("mtd4")).unwrap();
        fs::write(virt.join("mtd5/offset"), "262144\n").unwrap();
        fs::write(virt.join("mtd5/mtd6/offset"), "65536\n").unwrap();
        std::os::unix::fs::symlink("../../devices/virtual/mtd/mtd4", class.join("mtd4")).unwrap();
        std::os::unix::fs::symlink("../../devices/virtual/mtd/mtd5", class.join("mtd5")).unwrap();
        std::os::unix::fs::symlink("../../devices/virtual/mtd/mtd5/mtd6", class.join("mtd6"))
            .unwrap();
        let virtual_dir = "../../devices/virtual/mtd".to_string();
        let p = |i| placement(t.path(), i).unwrap();
        assert_eq!(
            p(4),
            Placement {
                offset: None,
                parent: None,
                dir: virtual_dir.clone()
            }
        );
        assert_eq!(
            p(5),
            Placement {
                offset: Some(0x40000),
                parent: None,
                dir: virtual_dir
            }
        );
        assert_eq!(
            p(6),
            Placement {
                offset: Some(0x10000),
                parent: Some(5),
                dir: String::new()
            }
        );
        // A plain directory, as in a captured tree: a master in no known directory.
        assert_eq!(
            p(0),
            Placement {
                offset: None,
                parent: None,
                dir: String::new()
            }
        );
        fs::write(virt.join("mtd5/offset"), "far\n").unwrap();
        assert!(matches!(
            placement(t.path(), 5),
            Err(MtdError::SysfsParse { .. })
        ));
    }
}
