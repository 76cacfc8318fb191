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
}
