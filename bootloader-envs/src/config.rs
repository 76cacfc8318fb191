//! The legacy `fw_env.config` text format shared by U-Boot's fw_env and libubootenv.
//!
//! One line per copy (one line = single copy, two = redundant): device, offset, env
//! size, optional sector size, optional sector count. `#` at the start of a line makes it
//! a comment. The offset is read like C's `%lli` (0x = hex, leading 0 = octal, else
//! decimal, may be negative); the sizes like `%lx`, i.e. always hexadecimal, with or
//! without `0x`. Lines with fewer than three fields are ignored, as libubootenv does.

use std::path::{Path, PathBuf};

use crate::error::{EnvError, Result};

/// One copy's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Device or file path (may be `/dev/ubi0:name`).
    pub device: PathBuf,
    /// Byte offset; negative counts from the end of a block device.
    pub offset: i64,
    /// Bytes per copy.
    pub env_size: u64,
    /// Erase-block size; 0 = take it from the device.
    pub sector_size: u64,
    /// Erase blocks the copy may span (NAND bad-block skipping); 0 = 1.
    pub sectors: u64,
}

/// A parsed fw_env.config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwEnvConfig {
    /// One or two entries.
    pub entries: Vec<ConfigEntry>,
}

impl FwEnvConfig {
    /// True with two copies.
    pub fn redundant(&self) -> bool {
        self.entries.len() == 2
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EnvError::io(format!("read {}", path.display()), e))?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let err = |line, why: String| EnvError::Config {
            path: path.to_owned(),
            line,
            why,
        };
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 3 {
                continue;
            }
            let num = |s: &str, what: &str, hex: bool| {
                let v = if hex { parse_hex(s) } else { parse_c_int(s) };
                v.ok_or_else(|| err(i + 1, format!("bad {what} {s:?}")))
            };
            let entry = ConfigEntry {
                device: PathBuf::from(f[0]),
                offset: num(f[1], "offset", false)?,
                env_size: num(f[2], "env size", true)? as u64,
                sector_size: f
                    .get(3)
                    .map(|s| num(s, "sector size", true))
                    .transpose()?
                    .unwrap_or(0) as u64,
                sectors: f
                    .get(4)
                    .map(|s| num(s, "sector count", true))
                    .transpose()?
                    .unwrap_or(0) as u64,
            };
            if entry.env_size == 0 {
                return Err(err(i + 1, "env size is 0".into()));
            }
            entries.push(entry);
            if entries.len() == 2 {
                break;
            }
        }
        if entries.is_empty() {
            return Err(err(0, "no device line".into()));
        }
        if entries.len() == 2 && entries[0].env_size != entries[1].env_size {
            return Err(err(0, "the two copies have different sizes".into()));
        }
        Ok(FwEnvConfig { entries })
    }
}

/// `%lx`: optional sign is not allowed for sizes; optional 0x; hex digits.
fn parse_hex(s: &str) -> Option<i64> {
    let d = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    i64::from_str_radix(d, 16).ok().filter(|v| *v >= 0)
}

/// `%lli` / strtoll base 0: sign, then 0x hex, 0 octal, or decimal.
pub fn parse_c_int(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let v = if let Some(h) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if rest.len() > 1 && rest.starts_with('0') {
        i64::from_str_radix(&rest[1..], 8).ok()?
    } else {
        rest.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: &str) -> Result<FwEnvConfig> {
        FwEnvConfig::parse(t, Path::new("t.config"))
    }

    #[test]
    fn sizes_are_hex_without_prefix_offsets_are_c_ints() {
        let c =
            p("# comment\n/dev/mtd1 0x0 20000 20000\n/dev/mtd1 010 0x20000 0x20000 4 1\n").unwrap();
        assert!(c.redundant());
        assert_eq!(c.entries[0].env_size, 0x20000);
        assert_eq!(c.entries[0].sector_size, 0x20000);
        assert_eq!(c.entries[1].offset, 8);
        assert_eq!(c.entries[1].sectors, 4);
        let c = p("/dev/mmcblk0 -0x4000 4000\n\n").unwrap();
        assert!(!c.redundant());
        assert_eq!(c.entries[0].offset, -0x4000);
        assert_eq!(c.entries[0].sector_size, 0);
        assert_eq!(p("/x 100 10").unwrap().entries[0].offset, 100);
    }

    #[test]
    fn bad_configs() {
        assert!(p("# nothing\n").is_err());
        assert!(p("/x 0 0\n").is_err());
        assert!(p("/x 0 zz\n").is_err());
        assert!(p("/x 0 1000\n/y 0 2000\n").is_err());
        // short lines are ignored like libubootenv does
        assert_eq!(
            p("/x 0\n/y 0 10\n").unwrap().entries[0].device,
            PathBuf::from("/y")
        );
    }
}
