//! The transaction journal: one record per target that is being written, kept
//! until the write is complete and verified, so that the agent's next start
//! can finish or undo it ([`crate::recover`]).
//!
//! Records are JSON. [`FileJournal`] stores each in its own file under a
//! directory the agent chooses (e.g. `ROOT/persist/.liminix/journal`), written
//! as temp file + fsync + rename + fsync of the directory, so a record is
//! either the old or the new one after a crash. The simulator's `SimJournal`
//! (feature `sim`) keeps records in memory and counts each store/clear as one
//! operation on the power rail; a torn store or clear does not take effect
//! (rename is atomic).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How a target is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Raw partition, single slot, compare-and-rewrite ([`crate::raw`]).
    Raw,
    /// UBI: new volume, verify, atomic rename ([`crate::ubi_update`]).
    UbiSwap,
    /// UBI: in-place volume update (`UBI_IOCVOLUP`).
    UbiInPlace,
}

/// How far a transaction got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The target may be partly written; the new image is not yet in use.
    Writing,
    /// UBI swap: the new volume is complete and verified; the rename may or
    /// may not have happened.
    Switching,
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRecord {
    /// Device the agent knows how to open again (e.g. `mtd:kernel_b`, `ubi0`).
    pub target: String,
    /// UBI volume name, for the UBI strategies.
    pub volume: Option<String>,
    /// Write strategy.
    pub strategy: Strategy,
    /// SHA-256 of the image, lowercase hex.
    pub image_sha256: String,
    /// Image length in bytes.
    pub image_size: u64,
    /// Progress of the transaction.
    pub phase: Phase,
    /// Where the agent keeps the verified image (informational).
    pub source_hint: Option<String>,
}

impl TxRecord {
    /// Key under which the record is stored: one record per target/volume.
    pub fn key(&self) -> String {
        match &self.volume {
            Some(v) => format!("{}:{}", self.target, v),
            None => self.target.clone(),
        }
    }

    /// The image hash as bytes.
    pub fn sha256(&self) -> Result<[u8; 32], JournalError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.image_sha256, &mut out).map_err(|_| JournalError::Corrupt {
            key: self.key(),
            reason: "bad image_sha256".into(),
        })?;
        Ok(out)
    }
}

/// Failure of the journal store.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The (simulated) power failed while storing.
    #[error("power cut while writing the journal")]
    PowerCut,
    /// A record cannot be parsed.
    #[error("journal record {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    /// Filesystem error.
    #[error("journal {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Durable storage of transaction records, keyed by [`TxRecord::key`].
pub trait JournalStore {
    /// All pending records.
    fn load_all(&mut self) -> Result<Vec<TxRecord>, JournalError>;
    /// Durably replace the record with the same key.
    fn store(&mut self, rec: &TxRecord) -> Result<(), JournalError>;
    /// Durably remove the record with this key (no error if absent).
    fn clear(&mut self, key: &str) -> Result<(), JournalError>;

    /// The pending record for `key`, if any.
    fn load(&mut self, key: &str) -> Result<Option<TxRecord>, JournalError> {
        Ok(self.load_all()?.into_iter().find(|r| r.key() == key))
    }
}

/// Journal in a directory, one `<key>.json` file per record.
#[derive(Debug, Clone)]
pub struct FileJournal {
    dir: PathBuf,
}

impl FileJournal {
    /// Use (and create) `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, JournalError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| io_err("create", &dir, source))?;
        Ok(FileJournal { dir })
    }

    fn path_for(&self, key: &str) -> PathBuf {
        // Keys contain ':' and '/', which must not become path separators.
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("tx-{safe}.json"))
    }

    /// fsync of the directory, then syncfs of its filesystem: UBIFS's fsync leaves
    /// the MTD device below it unsynced, and an MTD driver that buffers writes
    /// (block2mtd) only writes through when it is synced. A record must be on the
    /// medium before the first flash write it guards.
    fn sync_dir(&self) -> Result<(), JournalError> {
        let err = |source| io_err("fsync", &self.dir, source);
        let d = File::open(&self.dir).map_err(err)?;
        d.sync_all().map_err(err)?;
        rustix::fs::syncfs(&d).map_err(|e| err(e.into()))
    }
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> JournalError {
    JournalError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl JournalStore for FileJournal {
    fn load_all(&mut self) -> Result<Vec<TxRecord>, JournalError> {
        let rd = fs::read_dir(&self.dir).map_err(|source| io_err("list", &self.dir, source))?;
        let mut out = Vec::new();
        for entry in rd {
            let path = entry
                .map_err(|source| io_err("list", &self.dir, source))?
                .path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !(name.starts_with("tx-") && name.ends_with(".json")) {
                continue;
            }
            let text = fs::read(&path).map_err(|source| io_err("read", &path, source))?;
            let rec = serde_json::from_slice(&text).map_err(|e| JournalError::Corrupt {
                key: name.to_string(),
                reason: e.to_string(),
            })?;
            out.push(rec);
        }
        out.sort_by_key(TxRecord::key);
        Ok(out)
    }

    fn store(&mut self, rec: &TxRecord) -> Result<(), JournalError> {
        let path = self.path_for(&rec.key());
        let tmp = path.with_extension("tmp");
        let body = serde_json::to_vec_pretty(rec).map_err(|e| JournalError::Corrupt {
            key: rec.key(),
            reason: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(|source| io_err("create", &tmp, source))?;
        f.write_all(&body)
            .and_then(|()| f.sync_all())
            .map_err(|source| io_err("write", &tmp, source))?;
        fs::rename(&tmp, &path).map_err(|source| io_err("rename", &path, source))?;
        self.sync_dir()
    }

    fn clear(&mut self, key: &str) -> Result<(), JournalError> {
        let path = self.path_for(key);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(io_err("remove", &path, source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::PowerRail;
    use crate::sim::SimJournal;

    fn rec(target: &str, phase: Phase) -> TxRecord {
        TxRecord {
            target: target.into(),
            volume: Some("rootfs".into()),
            strategy: Strategy::UbiSwap,
            image_sha256: hex::encode([7u8; 32]),
            image_size: 123,
            phase,
            source_hint: Some("/persist/staging/rootfs.img".into()),
        }
    }

    #[test]
    fn file_journal_round_trip_replace_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = FileJournal::open(dir.path().join("journal")).unwrap();
        assert!(j.load_all().unwrap().is_empty());
        j.store(&rec("ubi0", Phase::Writing)).unwrap();
        j.store(&rec("ubi0", Phase::Switching)).unwrap();
        j.store(&rec("mtd:kernel/b", Phase::Writing)).unwrap();
        let all = j.load_all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(
            j.load("ubi0:rootfs").unwrap().unwrap().phase,
            Phase::Switching
        );
        assert_eq!(all[0].sha256().unwrap(), [7u8; 32]);
        j.clear("ubi0:rootfs").unwrap();
        j.clear("ubi0:rootfs").unwrap();
        assert_eq!(j.load_all().unwrap().len(), 1);
        let names: Vec<_> = fs::read_dir(dir.path().join("journal"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp files left: {names:?}");
    }

    #[test]
    fn file_journal_reports_corrupt_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = FileJournal::open(dir.path()).unwrap();
        fs::write(dir.path().join("tx-x.json"), b"{not json").unwrap();
        assert!(matches!(j.load_all(), Err(JournalError::Corrupt { .. })));
    }

    #[test]
    fn sim_journal_torn_store_keeps_old_record() {
        let rail = PowerRail::new();
        let mut j = SimJournal::new(rail.clone());
        j.store(&rec("ubi0", Phase::Writing)).unwrap();
        rail.cut_after(0);
        assert!(matches!(
            j.store(&rec("ubi0", Phase::Switching)),
            Err(JournalError::PowerCut)
        ));
        rail.reboot();
        assert_eq!(
            j.load("ubi0:rootfs").unwrap().unwrap().phase,
            Phase::Writing
        );
    }
}
