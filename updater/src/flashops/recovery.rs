//! Crash recovery for the agent: opens the devices and staged images that
//! journal records name, runs [`liminix_flash::recover`] over all of them and
//! tidies the staging area.
//!
//! It runs at the start of every `flashcp` and `ubi-update` (before anything
//! touches flash) and on its own as `liminix-agent recover` (e.g. from a boot
//! script). Record targets are `mtd:NAME` or `/dev/mtdN` for raw partitions and
//! `ubiN` for UBI devices, always resolved below the agent's `--root`.

use std::path::PathBuf;

use liminix_flash::journal::JournalStore;
use liminix_flash::txn::{recover, RecoveryEnv, TxError};
use liminix_flash::{
    FileImage, FileJournal, Flash, ImageSource, MtdFlash, Outcome, Progress, TxRecord, Ubi, UbiDev,
};
use serde::Serialize;

use super::error::FlashOpError;
use super::journal_dir::JournalLocation;
use crate::root::DeviceRoot;
use crate::staging::journal::{discard, staged_path};

/// What happened to one journal record.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryLine {
    /// Journal key (`target` or `target:volume`).
    pub key: String,
    /// `completed`, `rolled-back`, `torn` or `error`.
    pub outcome: &'static str,
    /// Why it is torn or failed.
    pub detail: Option<String>,
}

impl RecoveryLine {
    /// Whether the record is settled (and was removed from the journal).
    pub fn settled(&self) -> bool {
        matches!(self.outcome, "completed" | "rolled-back")
    }
}

impl std::fmt::Display for RecoveryLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "recovered {}: {}", self.key, self.outcome)?;
        match &self.detail {
            Some(d) => write!(f, " ({d})"),
            None => Ok(()),
        }
    }
}

/// Opens what records name, below `root`.
struct DeviceEnv<'a> {
    root: &'a DeviceRoot,
    loc: &'a JournalLocation,
    flash: Option<MtdFlash>,
    ubi: Option<UbiDev>,
}

fn target_err(rec: &TxRecord, e: impl std::fmt::Display) -> TxError {
    TxError::Target {
        target: rec.target.clone(),
        reason: e.to_string(),
    }
}

/// `ubiN` → N.
pub fn ubi_number(target: &str) -> Option<u32> {
    target
        .strip_prefix("/dev/")
        .unwrap_or(target)
        .strip_prefix("ubi")?
        .parse()
        .ok()
}

impl RecoveryEnv for DeviceEnv<'_> {
    fn source(&mut self, rec: &TxRecord) -> Option<Box<dyn ImageSource>> {
        // The staged copy is found by key even if the recorded path was
        // written under another root (install from a recovery system).
        let staged = staged_path(self.loc, &rec.key());
        let hinted = rec.source_hint.as_ref().map(PathBuf::from);
        [Some(staged), hinted]
            .into_iter()
            .flatten()
            .find_map(|p| FileImage::new(p).ok())
            .map(|f| Box::new(f) as Box<dyn ImageSource>)
    }

    fn flash(&mut self, rec: &TxRecord) -> Result<&mut dyn Flash, TxError> {
        let path = liminix_mtd::sysfs::resolve_device(self.root.dir(), &rec.target)
            .map_err(|e| target_err(rec, e))?;
        let f = MtdFlash::open(&path, true).map_err(|e| target_err(rec, e))?;
        Ok(self.flash.insert(f))
    }

    fn ubi(&mut self, rec: &TxRecord) -> Result<&mut dyn Ubi, TxError> {
        let num = ubi_number(&rec.target).ok_or_else(|| target_err(rec, "not a ubiN device"))?;
        let u = UbiDev::open(self.root.dir(), num).map_err(|e| target_err(rec, e))?;
        Ok(self.ubi.insert(u))
    }
}

/// Recover every pending record in the (locked) journal at `loc`.
pub fn recover_all(
    root: &DeviceRoot,
    loc: &JournalLocation,
    progress: &mut dyn Progress,
) -> Result<Vec<RecoveryLine>, FlashOpError> {
    let mut journal = FileJournal::open(&loc.dir)?;
    if journal.load_all()?.is_empty() {
        remove_orphans(loc, &[])?;
        return Ok(Vec::new());
    }
    let mut env = DeviceEnv {
        root,
        loc,
        flash: None,
        ubi: None,
    };
    let results = recover(&mut journal, &mut env, progress)?;
    let lines: Vec<RecoveryLine> = results
        .into_iter()
        .map(|(rec, r)| line(rec.key(), r))
        .collect();
    let pending: Vec<String> = journal.load_all()?.iter().map(TxRecord::key).collect();
    remove_orphans(loc, &pending)?;
    Ok(lines)
}

fn line(key: String, r: Result<Outcome, TxError>) -> RecoveryLine {
    let (outcome, detail) = match r {
        Ok(Outcome::Completed) => ("completed", None),
        Ok(Outcome::RolledBack) => ("rolled-back", None),
        Ok(Outcome::Torn { reason }) => ("torn", Some(reason)),
        Err(e) => ("error", Some(error_chain(&e))),
    };
    RecoveryLine {
        key,
        outcome,
        detail,
    }
}

/// `e` with its causes, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    liminix_bundle::wire::one_line(e)
}

/// Staged images whose record is gone are no longer needed.
fn remove_orphans(loc: &JournalLocation, pending: &[String]) -> Result<(), FlashOpError> {
    let keep: Vec<PathBuf> = pending.iter().map(|k| staged_path(loc, k)).collect();
    let Ok(rd) = std::fs::read_dir(loc.staging()) else {
        return Ok(());
    };
    for entry in rd.flatten() {
        let p = entry.path();
        if !keep.contains(&p) {
            let _ = std::fs::remove_file(&p);
        }
    }
    Ok(())
}

/// Drop the record `key` and its staged image without touching flash.
pub fn forget(loc: &JournalLocation, key: &str) -> Result<bool, FlashOpError> {
    let mut journal = FileJournal::open(&loc.dir)?;
    let had = journal.load(key)?.is_some();
    journal.clear(key)?;
    discard(loc, key)?;
    Ok(had)
}

#[cfg(test)]
mod tests {
    use super::*;
    use liminix_flash::{Phase, Strategy};

    fn record(target: &str) -> TxRecord {
        TxRecord {
            target: target.into(),
            volume: None,
            strategy: Strategy::Raw,
            image_sha256: hex::encode([1u8; 32]),
            image_size: 10,
            phase: Phase::Writing,
            source_hint: None,
        }
    }

    #[test]
    fn unopenable_target_is_kept_orphans_go_and_forget_drops() {
        let t = tempfile::tempdir().unwrap();
        let root = DeviceRoot::new(t.path());
        let loc = JournalLocation::locate(&root, Some(&t.path().join("j")));
        let _lock = loc.lock().unwrap();
        FileJournal::open(&loc.dir)
            .unwrap()
            .store(&record("mtd:gone"))
            .unwrap();
        std::fs::write(staged_path(&loc, "mtd:gone"), b"img").unwrap();
        std::fs::write(staged_path(&loc, "mtd:orphan"), b"img").unwrap();
        let lines = recover_all(&root, &loc, &mut liminix_flash::NoProgress).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].outcome, "error", "{}", lines[0]);
        assert!(!lines[0].settled());
        assert!(
            staged_path(&loc, "mtd:gone").exists(),
            "kept for the record"
        );
        assert!(
            !staged_path(&loc, "mtd:orphan").exists(),
            "no record, no image"
        );
        assert!(forget(&loc, "mtd:gone").unwrap());
        assert!(!staged_path(&loc, "mtd:gone").exists());
        assert!(!forget(&loc, "mtd:gone").unwrap());
        assert!(recover_all(&root, &loc, &mut liminix_flash::NoProgress)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn ubi_numbers() {
        assert_eq!(ubi_number("ubi0"), Some(0));
        assert_eq!(ubi_number("/dev/ubi12"), Some(12));
        assert_eq!(ubi_number("ubi0_1"), None);
        assert_eq!(ubi_number("mtd:kernel"), None);
    }
}
