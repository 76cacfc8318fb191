//! The legacy `fw_env.config` text format shared by U-Boot's fw_env and libubootenv.
//!
//! One line per copy (one line = single copy, two = redundant): device, offset, env
//! size, optional sector size, optional sector count. `#` at the start of a line makes it
//! a comment. The offset is read like C's `%lli` (0x = hex, leading 0 = octal, else
//! decimal, may be negative); the sizes like `%lx`, i.e. always hexadecimal, with or
//! without `0x`. Lines with fewer than three fields are ignored, as libubootenv does.

use std::path::{Path, PathBuf};

use crate::error::{EnvError, Result};

/// Largest environment copy accepted. U-Boot environments are a few KiB to 256 KiB; a copy is
/// held in memory (twice when redundant), so a damaged line must not ask for gigabytes.
pub const MAX_ENV_SIZE: u64 = 4 << 20;
/// Largest erase block accepted (NAND blocks are at most a few MiB); a write holds one in memory.
pub const MAX_SECTOR_SIZE: u64 = 16 << 20;
/// Most erase blocks one copy may span, bad blocks included.
pub const MAX_SECTORS: u64 = 4096;

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
            let Some(entry) = scan_line(line) else {
                continue;
            };
            if entry.env_size == 0 {
                return Err(err(i + 1, "env size is 0".into()));
            }
            entry.check_bounds().map_err(|why| err(i + 1, why))?;
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

impl ConfigEntry {
    /// Each number within the sane maximum: the sizes are allocated, the sector count bounds
    /// a search. The device's own size is checked where the copy is opened.
    fn check_bounds(&self) -> std::result::Result<(), String> {
        let bounds = [
            ("env size", self.env_size, MAX_ENV_SIZE),
            ("sector size", self.sector_size, MAX_SECTOR_SIZE),
            ("sector count", self.sectors, MAX_SECTORS),
        ];
        for (what, value, max) in bounds {
            if value > max {
                return Err(format!(
                    "{what} {value:#x} is larger than the limit of {max:#x}"
                ));
            }
        }
        Ok(())
    }
}

/// One line the way `sscanf(line, "%ms %lli %zx %zx %lx")` reads it: fields are taken
/// in order and scanning stops at the first one that does not start with a number (a
/// number followed by junk still counts, and ends the scan). Fewer than three fields:
/// the line is ignored.
fn scan_line(line: &str) -> Option<ConfigEntry> {
    let mut tokens = line.split_whitespace();
    let device = PathBuf::from(tokens.next()?);
    let mut nums = [0i64; 4];
    let mut got = 0;
    for (k, tok) in tokens.take(4).enumerate() {
        let Some((v, all)) = scan_int(tok, k == 0) else {
            break;
        };
        nums[k] = v;
        got += 1;
        if !all {
            break;
        }
    }
    if got < 2 {
        return None;
    }
    Some(ConfigEntry {
        device,
        offset: nums[0],
        env_size: nums[1].unsigned_abs(),
        sector_size: nums[2].unsigned_abs(),
        sectors: nums[3].unsigned_abs(),
    })
}

/// Longest numeric prefix: `base0` = strtoll base 0 (`%lli`), else hexadecimal (`%lx`).
/// Returns the value and whether the whole token was consumed.
fn scan_int(tok: &str, base0: bool) -> Option<(i64, bool)> {
    let b = tok.as_bytes();
    let mut i = 0;
    let neg = match b.first() {
        Some(b'-') if base0 => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let has_0x = b.len() > i + 2
        && b[i] == b'0'
        && (b[i + 1] | 0x20) == b'x'
        && b[i + 2].is_ascii_hexdigit();
    let radix = if has_0x || !base0 {
        16
    } else if b.get(i) == Some(&b'0') {
        8
    } else {
        10
    };
    if has_0x {
        i += 2;
    }
    let digits = b[i..]
        .iter()
        .take_while(|c| (**c as char).is_digit(radix))
        .count();
    if digits == 0 {
        return None;
    }
    let v = i64::from_str_radix(&tok[i..i + digits], radix).ok()?;
    Some((if neg { -v } else { v }, i + digits == b.len()))
}

/// `%lli` / strtoll base 0 on a whole string: sign, then 0x hex, 0 octal, or decimal.
pub fn parse_c_int(s: &str) -> Option<i64> {
    match scan_int(s, true)? {
        (v, true) => Some(v),
        _ => None,
    }
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
        for (line, want) in [
            (
                "/x 0 7fffffffffffffff\n",
                "env size 0x7fffffffffffffff is larger",
            ),
            (
                "/x 0 400001\n",
                "env size 0x400001 is larger than the limit of 0x400000",
            ),
            ("/x 0 4000 1000001\n", "sector size 0x1000001 is larger"),
            ("/x 0 4000 20000 1001\n", "sector count 0x1001 is larger"),
        ] {
            let e = p(line).unwrap_err().to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
        assert_eq!(
            p("/x 0 400000 1000000 1000\n").unwrap().entries[0].sectors,
            4096
        );
        // short lines are ignored like libubootenv does
        assert_eq!(
            p("/x 0\n/y 0 10\n").unwrap().entries[0].device,
            PathBuf::from("/y")
        );
    }
}
