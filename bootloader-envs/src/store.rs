//! The environment engine: load the current copy, and store a changed environment
//! without ever leaving the device without a loadable environment (redundant layout).
//!
//! A save builds the complete new copy, writes it to the copy that is *not* current
//! (or to the only copy), reads it back and compares, and only then makes it current:
//! by its larger flag (incremental scheme) or by programming the old copy's flag to 0
//! (boolean scheme on NOR). The current copy is never touched before the new one is
//! verified, so a power cut at any point leaves either the old or the new environment.
//! A single-copy environment is erased and rewritten in place and cannot be safe.

use crate::env::Env;
use crate::error::{EnvError, Result};
use crate::layout::{next_flags, select_current, CopyState, FlagScheme, Layout, SelectRule};
use crate::storage::CopyDevice;

/// Both copies as found on the device.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Raw bytes of each copy.
    pub raw: Vec<Vec<u8>>,
    /// CRC and flags of each copy.
    pub states: Vec<CopyState>,
    /// Index of the current copy, `None` if no CRC is good.
    pub current: Option<usize>,
    /// Copies that could not be read (they count as invalid).
    pub read_errors: Vec<String>,
}

/// A successfully loaded environment.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The variables of the current copy.
    pub env: Env,
    /// Which copy they came from.
    pub copy: usize,
    /// Its flags byte (redundant layout).
    pub flags: Option<u8>,
    /// Entries without `=` that were skipped.
    pub skipped: usize,
}

/// What a save did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveReport {
    /// The copy that was written.
    pub copy: usize,
    /// The flags byte it got (redundant layout).
    pub flags: Option<u8>,
}

/// One environment (single or redundant) on its storage.
pub struct EnvStore {
    layout: Layout,
    copies: Vec<Box<dyn CopyDevice>>,
    rule: SelectRule,
    pad: u8,
}

impl EnvStore {
    /// One device per copy: one for a single, two for a redundant layout.
    pub fn new(layout: Layout, copies: Vec<Box<dyn CopyDevice>>) -> Result<Self> {
        let want = if layout.redundant { 2 } else { 1 };
        if copies.len() != want {
            return Err(EnvError::Geometry(format!(
                "{} layout needs {want} device(s), got {}",
                if layout.redundant {
                    "redundant"
                } else {
                    "single"
                },
                copies.len()
            )));
        }
        if want == 2 && copies[0].flag_scheme() != copies[1].flag_scheme() {
            return Err(EnvError::Geometry(
                "the two copies are on storage with different flag schemes".into(),
            ));
        }
        Ok(EnvStore {
            layout,
            copies,
            rule: SelectRule::UBoot,
            pad: 0,
        })
    }

    /// Which copy-selection rule to follow (default: U-Boot's).
    pub fn with_rule(mut self, rule: SelectRule) -> Self {
        self.rule = rule;
        self
    }

    /// Byte used after the terminator (default 0, as U-Boot's `saveenv`).
    pub fn with_padding(mut self, pad: u8) -> Self {
        self.pad = pad;
        self
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The flag scheme of the storage.
    pub fn flag_scheme(&self) -> FlagScheme {
        self.copies[0].flag_scheme()
    }

    /// Reads every copy and decides which one is current.
    ///
    /// A copy that cannot be read (say, a torn NAND page with an uncorrectable ECC error)
    /// counts as invalid, as in U-Boot, so the other copy is used and the unreadable one
    /// is the next to be rewritten. Only when no copy can be read is that an error.
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        let mut raw = Vec::new();
        let mut states = Vec::new();
        let mut read_errors = Vec::new();
        for dev in &mut self.copies {
            let mut buf = vec![0u8; self.layout.env_size];
            match dev.read_copy(&mut buf) {
                Ok(()) => states.push(self.layout.inspect(&buf)),
                Err(e) => {
                    states.push(CopyState {
                        crc_ok: false,
                        flags: None,
                    });
                    read_errors.push(e);
                }
            }
            raw.push(buf);
        }
        if read_errors.len() == self.copies.len() {
            return Err(read_errors.remove(0));
        }
        let current = if self.layout.redundant {
            select_current([&states[0], &states[1]], self.flag_scheme(), self.rule)
        } else {
            states[0].crc_ok.then_some(0)
        };
        Ok(Snapshot {
            raw,
            states,
            current,
            read_errors: read_errors.iter().map(ToString::to_string).collect(),
        })
    }

    /// Loads the current environment; fails with [`EnvError::BadCrc`] if no copy is valid.
    pub fn load(&mut self) -> Result<Loaded> {
        let snap = self.snapshot()?;
        let copy = snap.current.ok_or(EnvError::BadCrc {
            copies: snap.raw.len(),
        })?;
        let (env, report) = self.layout.parse(&snap.raw[copy])?;
        Ok(Loaded {
            env,
            copy,
            flags: snap.states[copy].flags,
            skipped: report.skipped,
        })
    }

    /// Stores `env` as the new current environment (see the module docs for the order).
    pub fn save(&mut self, env: &Env) -> Result<SaveReport> {
        // Encode first: an environment that does not fit must not touch the device.
        let data = env.encode_data(self.layout.data_len(), self.pad)?;
        let snap = self.snapshot()?;
        self.save_data(&snap, &data)
    }

    /// Loads, lets `change` edit the variables, and saves the result as one write.
    pub fn update<T>(&mut self, change: impl FnOnce(&mut Env) -> Result<T>) -> Result<T> {
        let mut env = self.load()?.env;
        let out = change(&mut env)?;
        self.save(&env)?;
        Ok(out)
    }

    /// Writes an already laid-out data area (used by the fw_setenv emulation, which
    /// needs libubootenv's exact bytes) following the same safe order as [`Self::save`].
    pub fn save_data(&mut self, snap: &Snapshot, data: &[u8]) -> Result<SaveReport> {
        if data.len() != self.layout.data_len() {
            return Err(EnvError::Geometry(format!(
                "data area of {} bytes, layout wants {}",
                data.len(),
                self.layout.data_len()
            )));
        }
        let (target, flags) = if self.layout.redundant {
            // With no valid copy, copy 0 plays "current" (libubootenv does the same).
            let cur = snap.current.unwrap_or(0);
            let cur_flags = snap.states[cur].flags.unwrap_or(0);
            (1 - cur, Some(next_flags(self.flag_scheme(), cur_flags)))
        } else {
            (0, None)
        };
        let image = self.layout.wrap(data, flags.unwrap_or(0));
        let dev = &mut self.copies[target];
        dev.write_copy(&image)?;
        let mut back = vec![0u8; image.len()];
        dev.read_copy(&mut back)?;
        if let Some(offset) = image.iter().zip(&back).position(|(a, b)| a != b) {
            return Err(EnvError::VerifyFailed {
                what: dev.describe(),
                offset,
            });
        }
        if self.layout.redundant && self.flag_scheme() == FlagScheme::Boolean {
            if let Some(old) = snap.current {
                self.copies[old].mark_obsolete()?;
            }
        }
        Ok(SaveReport {
            copy: target,
            flags,
        })
    }
}
