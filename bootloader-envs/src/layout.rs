//! Byte layout of one environment copy and the rule for which of two copies is current.
//!
//! Single copy: `crc32 (4) | data`. Redundant copy: `crc32 (4) | flags (1) | data`. The
//! CRC is zlib's CRC-32 over the whole data area, padding included, stored in the target
//! CPU's byte order (big-endian on ath79 MIPS boards, little-endian on ARM and MT7621).

use crate::env::{Env, ParseReport};
use crate::error::{EnvError, Result};

/// Byte order of the stored CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Little-endian targets (ARM, MT7621, x86).
    Little,
    /// Big-endian targets (ath79 and other MIPS BE boards).
    Big,
}

impl Endian {
    /// The byte order of the machine this code runs on (what fw_printenv uses).
    pub fn native() -> Self {
        if cfg!(target_endian = "big") {
            Endian::Big
        } else {
            Endian::Little
        }
    }

    fn encode(self, v: u32) -> [u8; 4] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }

    fn decode(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }
}

/// How the flags byte of a redundant environment is advanced on each save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagScheme {
    /// New copy gets `current + 1` (u8, wraps). NAND, UBI, files, block devices.
    Incremental,
    /// New copy gets 1 (active); the old copy's flag byte is then programmed to 0
    /// (obsolete) without an erase. NOR flash in libubootenv and U-Boot's env/flash.c.
    Boolean,
}

/// Whose copy-selection rule to apply; they differ only for flag pairs no correct
/// writer produces, but a drop-in fw_printenv must agree with libubootenv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectRule {
    /// U-Boot: `env_check_redund` (incremental) and `env_flash_init` (boolean, NOR).
    UBoot,
    /// libubootenv 0.3.x `libuboot_load`.
    LibUbootEnv,
}

/// Size, redundancy and byte order of one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes per copy (CONFIG_ENV_SIZE).
    pub env_size: usize,
    /// Two copies with a flags byte each.
    pub redundant: bool,
    /// Byte order of the CRC.
    pub endian: Endian,
}

/// What one copy holds, before any choice between copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyState {
    /// Stored CRC equals the computed one.
    pub crc_ok: bool,
    /// Flags byte (redundant layout only).
    pub flags: Option<u8>,
}

impl Layout {
    /// A layout, rejecting sizes that cannot hold the header plus a terminator.
    pub fn new(env_size: usize, redundant: bool, endian: Endian) -> Result<Self> {
        let l = Layout {
            env_size,
            redundant,
            endian,
        };
        if env_size < l.header_len() + 1 {
            return Err(EnvError::Geometry(format!(
                "env size {env_size} is smaller than its header"
            )));
        }
        Ok(l)
    }

    /// 4 (CRC) or 5 (CRC + flags).
    pub fn header_len(&self) -> usize {
        if self.redundant {
            5
        } else {
            4
        }
    }

    /// Bytes available for variables.
    pub fn data_len(&self) -> usize {
        self.env_size - self.header_len()
    }

    /// Builds one copy: header with CRC (and flags) plus the data area padded with `pad`.
    pub fn encode(&self, env: &Env, flags: u8, pad: u8) -> Result<Vec<u8>> {
        let data = env.encode_data(self.data_len(), pad)?;
        Ok(self.wrap(&data, flags))
    }

    /// Puts a header in front of an already laid-out data area of `data_len()` bytes.
    pub fn wrap(&self, data: &[u8], flags: u8) -> Vec<u8> {
        debug_assert_eq!(data.len(), self.data_len());
        let mut out = Vec::with_capacity(self.env_size);
        out.extend_from_slice(&self.endian.encode(crc32fast::hash(data)));
        if self.redundant {
            out.push(flags);
        }
        out.extend_from_slice(data);
        out
    }

    /// Checks the CRC and reads the flags of one copy (`bytes.len() == env_size`).
    pub fn inspect(&self, bytes: &[u8]) -> CopyState {
        let stored = self.endian.decode([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let data = &bytes[self.header_len()..self.env_size];
        CopyState {
            crc_ok: crc32fast::hash(data) == stored,
            flags: self.redundant.then_some(bytes[4]),
        }
    }

    /// Parses the variables of one copy whose CRC is known to be good.
    pub fn parse(&self, bytes: &[u8]) -> Result<(Env, ParseReport)> {
        Env::parse_data(&bytes[self.header_len()..self.env_size])
    }
}

/// Which copy is current, or `None` if neither has a good CRC.
///
/// Rules, in order (copy 0 = first line of fw_env.config / CONFIG_ENV_OFFSET):
/// 1. Only one CRC good: that copy.
/// 2. Incremental flags (both rules): (255, 0) → copy 1 and (0, 255) → copy 0, because
///    the counter wrapped; otherwise the larger flag; equal → copy 0.
/// 3. Boolean flags, U-Boot (`env/flash.c`): (1, 0) → 0; (0, 1) → 1; equal → 0;
///    a 0xFF flag (never programmed) wins; anything else → copy 0.
/// 4. Boolean flags, libubootenv: larger flag wins, then copy 1 if its flag is 0xFF,
///    else copy 0 if its flag is 0xFF.
pub fn select_current(
    states: [&CopyState; 2],
    scheme: FlagScheme,
    rule: SelectRule,
) -> Option<usize> {
    match (states[0].crc_ok, states[1].crc_ok) {
        (false, false) => return None,
        (true, false) => return Some(0),
        (false, true) => return Some(1),
        (true, true) => {}
    }
    let f0 = states[0].flags.unwrap_or(0);
    let f1 = states[1].flags.unwrap_or(0);
    Some(match (scheme, rule) {
        (FlagScheme::Incremental, _) => incremental(f0, f1),
        (FlagScheme::Boolean, SelectRule::UBoot) => boolean_uboot(f0, f1),
        (FlagScheme::Boolean, SelectRule::LibUbootEnv) => boolean_libubootenv(f0, f1),
    })
}

fn incremental(f0: u8, f1: u8) -> usize {
    match (f0, f1) {
        (255, 0) => 1,
        (0, 255) => 0,
        _ if f1 > f0 => 1,
        _ => 0,
    }
}

fn boolean_uboot(f0: u8, f1: u8) -> usize {
    match (f0, f1) {
        (1, 0) => 0,
        (0, 1) => 1,
        _ if f0 == f1 => 0,
        (0xFF, _) => 0,
        (_, 0xFF) => 1,
        _ => 0,
    }
}

fn boolean_libubootenv(f0: u8, f1: u8) -> usize {
    if f1 == 0xFF {
        1
    } else if f0 == 0xFF {
        0
    } else if f1 > f0 {
        1
    } else {
        0
    }
}

/// The flags byte for the copy about to be written, given the current copy's flags.
pub fn next_flags(scheme: FlagScheme, current: u8) -> u8 {
    match scheme {
        FlagScheme::Incremental => current.wrapping_add(1),
        FlagScheme::Boolean => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(ok: bool, f: u8) -> CopyState {
        CopyState {
            crc_ok: ok,
            flags: Some(f),
        }
    }

    fn pick(f0: u8, f1: u8, s: FlagScheme, r: SelectRule) -> usize {
        select_current([&st(true, f0), &st(true, f1)], s, r).unwrap()
    }

    #[test]
    fn one_bad_copy_selects_the_other() {
        for r in [SelectRule::UBoot, SelectRule::LibUbootEnv] {
            for s in [FlagScheme::Incremental, FlagScheme::Boolean] {
                assert_eq!(select_current([&st(true, 0), &st(false, 9)], s, r), Some(0));
                assert_eq!(select_current([&st(false, 9), &st(true, 0)], s, r), Some(1));
                assert_eq!(select_current([&st(false, 1), &st(false, 2)], s, r), None);
            }
        }
    }

    #[test]
    fn incremental_wraps_and_ties_go_to_copy_0() {
        for r in [SelectRule::UBoot, SelectRule::LibUbootEnv] {
            let i = FlagScheme::Incremental;
            assert_eq!(pick(255, 0, i, r), 1);
            assert_eq!(pick(0, 255, i, r), 0);
            assert_eq!(pick(3, 4, i, r), 1);
            assert_eq!(pick(4, 3, i, r), 0);
            assert_eq!(pick(7, 7, i, r), 0);
            assert_eq!(pick(254, 255, i, r), 1);
        }
    }

    #[test]
    fn incremental_successor_is_always_selected() {
        // For every current flag f (copy c), writing f+1 into the other copy makes it current.
        for f in 0..=255u8 {
            let n = next_flags(FlagScheme::Incremental, f);
            assert_eq!(pick(f, n, FlagScheme::Incremental, SelectRule::UBoot), 1);
            assert_eq!(pick(n, f, FlagScheme::Incremental, SelectRule::UBoot), 0);
        }
    }

    #[test]
    fn boolean_rules() {
        let b = FlagScheme::Boolean;
        for r in [SelectRule::UBoot, SelectRule::LibUbootEnv] {
            assert_eq!(pick(1, 0, b, r), 0);
            assert_eq!(pick(0, 1, b, r), 1);
            assert_eq!(pick(1, 1, b, r), 0);
            assert_eq!(pick(0xFF, 1, b, r), 0);
            assert_eq!(pick(1, 0xFF, b, r), 1);
        }
        // the rules differ on pairs only a foreign writer leaves behind
        assert_eq!(pick(2, 3, b, SelectRule::UBoot), 0);
        assert_eq!(pick(2, 3, b, SelectRule::LibUbootEnv), 1);
        assert_eq!(pick(0xFF, 0xFF, b, SelectRule::LibUbootEnv), 1);
        assert_eq!(pick(0xFF, 0xFF, b, SelectRule::UBoot), 0);
    }

    #[test]
    fn golden_single_copy_le_and_be() {
        let mut env = Env::new();
        env.set(b"a", b"1").unwrap();
        let le = Layout::new(16, false, Endian::Little).unwrap();
        let be = Layout::new(16, false, Endian::Big).unwrap();
        let data = b"a=1\0\0\0\0\0\0\0\0\0";
        let crc = crc32fast::hash(data);
        let l = le.encode(&env, 0, 0).unwrap();
        assert_eq!(&l[..4], &crc.to_le_bytes());
        assert_eq!(&l[4..], data);
        let b = be.encode(&env, 0, 0).unwrap();
        assert_eq!(&b[..4], &crc.to_be_bytes());
        assert!(le.inspect(&l).crc_ok && be.inspect(&b).crc_ok);
        assert!(!le.inspect(&b).crc_ok);
    }

    #[test]
    fn redundant_header_has_flags_and_crc_skips_them() {
        let env = Env::from_text(b"x=y\n").unwrap();
        let l = Layout::new(32, true, Endian::Little).unwrap();
        let img = l.encode(&env, 7, 0xFF).unwrap();
        assert_eq!(img[4], 7);
        assert_eq!(&img[5..10], b"x=y\0\0");
        let st = l.inspect(&img);
        assert_eq!(st.flags, Some(7));
        assert!(st.crc_ok);
        let mut other = img.clone();
        other[4] = 9; // flags are outside the CRC
        assert!(l.inspect(&other).crc_ok);
        other[20] ^= 1;
        assert!(!l.inspect(&other).crc_ok);
        assert!(Layout::new(5, true, Endian::Little).is_err());
    }
}
