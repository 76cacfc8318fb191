//! Journalled image transactions and crash recovery.
//!
//! Every transaction stores a [`TxRecord`] before the first change to the
//! target and clears it only after the new image has been read back,
//! verified and synced (a record cleared over writes the device still buffers
//! would let a power cut take them back without a trace). Recovery syncs the
//! target before it clears a record too: what it finds may be writes of an
//! agent that died without a power cut, still unsynced. [`recover`] (run by the agent at every start, before anything
//! else touches the targets) looks at each pending record and:
//!
//! | strategy | phase | action |
//! |---|---|---|
//! | raw | writing | if the partition already verifies → done; else re-run the writer from the image source (completes); **without a source the partition is reported torn** and the record is kept |
//! | UBI swap | writing | remove the half-written `<name>.new` (rolls back; `<name>` was never touched) |
//! | UBI swap | switching | if `<name>.new` still exists and verifies → the atomic rename (completes); if it is gone, `<name>` must verify |
//! | UBI in place | writing | if the volume verifies → done; else re-run the volume update from the source; without a source an intact (unmarked) volume is kept, a marked one is reported torn |
//!
//! Recovery steps are idempotent, so a crash during recovery is handled by
//! running it again.

use std::io;

use crate::flash::{hash_image, Flash, FlashError};
use crate::image::ImageSource;
use crate::journal::{JournalError, JournalStore, Phase, Strategy, TxRecord};
use crate::progress::{Progress, Stage};
use crate::raw::{scan_raw, write_raw, RawError, RawOptions, RawReport};
use crate::ubi::{Ubi, UbiError, UbiVolume, VolKind};
use crate::ubi_update::{
    new_name, old_name, plan, volume_equals, volume_matches, write_volume, PlanError, UbiOptions,
    UbiPlan, VolumeWriteError,
};

/// Failure of a transaction or of recovery.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// A previous transaction on this target has not been recovered yet.
    #[error("transaction {0:?} is still pending; run recovery first")]
    Pending(String),
    /// Reading or hashing the image source failed.
    #[error("image source {what}: {source}")]
    Source {
        what: String,
        #[source]
        source: io::Error,
    },
    /// Refused before any write (size, space).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Raw writer failure.
    #[error(transparent)]
    Raw(#[from] RawError),
    /// Volume write failure.
    #[error(transparent)]
    VolumeWrite(#[from] VolumeWriteError),
    /// UBI failure.
    #[error(transparent)]
    Ubi(#[from] UbiError),
    /// Journal failure.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The new volume did not read back as the image.
    #[error("UBI volume {volume:?} does not read back as the image")]
    Verify { volume: String },
    /// The image does not hash as it was verified to.
    #[error("image hashes to {got}, not to the verified {expected}")]
    NotVerified { expected: String, got: String },
    /// The target named by a journal record could not be opened.
    #[error("cannot open target {target:?}: {reason}")]
    Target { target: String, reason: String },
}

impl From<FlashError> for TxError {
    fn from(e: FlashError) -> Self {
        TxError::Raw(e.into())
    }
}

impl TxError {
    /// Whether the (simulated) power failed.
    pub fn is_power_cut(&self) -> bool {
        match self {
            TxError::Raw(e) => e.is_power_cut(),
            TxError::VolumeWrite(VolumeWriteError::Ubi(e)) | TxError::Ubi(e) => e.is_power_cut(),
            TxError::Plan(PlanError::Ubi(e)) => e.is_power_cut(),
            TxError::Journal(JournalError::PowerCut) => true,
            _ => false,
        }
    }
}

/// What recovery did with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new image is in place and verified.
    Completed,
    /// The old image is in place; the partial new one was removed.
    RolledBack,
    /// The target holds neither image completely and cannot be repaired
    /// without the image source; the record is kept.
    Torn { reason: String },
}

/// Result of a UBI transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbiReport {
    /// Strategy used.
    pub strategy: Strategy,
    /// Id of the volume now called `<name>`.
    pub volume_id: u32,
    /// Name under which the previous image is kept, if it is.
    pub old_kept_as: Option<String>,
    /// SHA-256 of the image.
    pub sha256: [u8; 32],
}

fn hash_source(src: &dyn ImageSource) -> Result<[u8; 32], TxError> {
    src.sha256().map_err(|source| TxError::Source {
        what: src.describe(),
        source,
    })
}

fn record(
    target: &str,
    volume: Option<&str>,
    strategy: Strategy,
    sha: &[u8; 32],
    src: &dyn ImageSource,
) -> TxRecord {
    TxRecord {
        target: target.to_string(),
        volume: volume.map(str::to_string),
        strategy,
        image_sha256: hex::encode(sha),
        image_size: src.len(),
        phase: Phase::Writing,
        source_hint: Some(src.describe()),
    }
}

fn ensure_idle(journal: &mut dyn JournalStore, key: &str) -> Result<(), TxError> {
    match journal.load(key)? {
        Some(_) => Err(TxError::Pending(key.to_string())),
        None => Ok(()),
    }
}

/// Write `src` to raw partition `flash` (known to the agent as `target`) as a
/// journalled transaction. The compare pass hashes the image and reads flash
/// without writing; its hash goes into the journal before the first erase.
pub fn update_raw(
    flash: &mut dyn Flash,
    journal: &mut dyn JournalStore,
    target: &str,
    src: &dyn ImageSource,
    opts: &RawOptions,
    progress: &mut dyn Progress,
) -> Result<RawReport, TxError> {
    ensure_idle(journal, target)?;
    let scan = scan_raw(flash, src, opts, progress)?;
    let rec = record(target, None, Strategy::Raw, &scan.sha256(), src);
    journal.store(&rec)?;
    // On failure the record stays: recovery re-checks the partition against
    // the recorded hash and finishes the write from the staged image.
    let report = scan.write(flash, src, opts, progress)?;
    journal.clear(&rec.key())?;
    Ok(report)
}

/// Update UBI volume `volume` on device `ubi` (known to the agent as
/// `target`) as a journalled transaction, by swap or in place per [`plan`].
pub fn update_ubi(
    ubi: &mut dyn Ubi,
    journal: &mut dyn JournalStore,
    target: &str,
    volume: &str,
    src: &dyn ImageSource,
    opts: &UbiOptions,
    progress: &mut dyn Progress,
) -> Result<UbiReport, TxError> {
    ensure_idle(journal, &format!("{target}:{volume}"))?;
    match plan(ubi, volume, src.len(), opts)? {
        UbiPlan::Swap {
            volume_bytes,
            kind,
            current,
            remove_first,
        } => {
            for v in remove_first {
                ubi.remove_volume(v.id)?;
            }
            // Recovery of a swap that is still writing only removes
            // `<name>.new`, so the hash is recorded when the phase moves on.
            let mut rec = record(target, Some(volume), Strategy::UbiSwap, &[0; 32], src);
            rec.image_sha256.clear();
            let job = SwapJob {
                volume,
                volume_bytes,
                kind,
                current: current.map(|c| c.id),
                src,
                expect: opts.expect_sha256,
            };
            let result = swap(ubi, journal, &mut rec, &job, progress);
            if matches!(&result, Err(e) if !e.is_power_cut()) {
                // Undo (or finish) right away instead of leaving it for the
                // next start; if this fails too the record is still there.
                let _ = recover_ubi(ubi, journal, &rec, None, progress);
            }
            result
        }
        UbiPlan::InPlace { current } => {
            in_place(ubi, journal, target, current, src, opts, progress)
        }
    }
}

/// Overwrite the volume: its old contents are gone from the first write, so
/// the hash must be in the journal before it (recovery rewrites from source).
fn in_place(
    ubi: &mut dyn Ubi,
    journal: &mut dyn JournalStore,
    target: &str,
    current: UbiVolume,
    src: &dyn ImageSource,
    opts: &UbiOptions,
    progress: &mut dyn Progress,
) -> Result<UbiReport, TxError> {
    progress.begin(Stage::Hashing, src.len());
    let sha = hash_source(src)?;
    verified_as(sha, opts.expect_sha256)?;
    let rec = record(target, Some(&current.name), Strategy::UbiInPlace, &sha, src);
    journal.store(&rec)?;
    let written = write_volume(ubi, current.id, src, progress)?;
    if written != sha || !volume_equals(ubi, current.id, src, progress)? {
        return Err(TxError::Verify {
            volume: current.name,
        });
    }
    journal.clear(&rec.key())?;
    Ok(UbiReport {
        strategy: Strategy::UbiInPlace,
        volume_id: current.id,
        old_kept_as: None,
        sha256: sha,
    })
}

struct SwapJob<'a> {
    volume: &'a str,
    volume_bytes: u64,
    kind: VolKind,
    current: Option<u32>,
    src: &'a dyn ImageSource,
    expect: Option<[u8; 32]>,
}

fn verified_as(sha: [u8; 32], expect: Option<[u8; 32]>) -> Result<(), TxError> {
    match expect {
        Some(want) if want != sha => Err(TxError::NotVerified {
            expected: hex::encode(want),
            got: hex::encode(sha),
        }),
        _ => Ok(()),
    }
}

/// Stage, verify, switch; `rec.phase` tells the caller how far it got. The
/// image is hashed once, while it is written; the read-back is compared with
/// the source, which also catches a source that changed in between.
fn swap(
    ubi: &mut dyn Ubi,
    journal: &mut dyn JournalStore,
    rec: &mut TxRecord,
    job: &SwapJob<'_>,
    progress: &mut dyn Progress,
) -> Result<UbiReport, TxError> {
    journal.store(rec)?;
    let staged = new_name(job.volume);
    let id = ubi.make_volume(&staged, job.volume_bytes, job.kind)?;
    let sha = write_volume(ubi, id, job.src, progress)?;
    verified_as(sha, job.expect)?;
    if !volume_equals(ubi, id, job.src, progress)? {
        return Err(TxError::Verify { volume: staged });
    }
    rec.image_sha256 = hex::encode(sha);
    rec.phase = Phase::Switching;
    journal.store(rec)?;
    let old_kept_as = switch(ubi, job.volume, id, job.current)?;
    journal.clear(&rec.key())?;
    Ok(UbiReport {
        strategy: Strategy::UbiSwap,
        volume_id: id,
        old_kept_as,
        sha256: sha,
    })
}

/// The one atomic rename that makes the staged volume current, synced.
fn switch(
    ubi: &mut dyn Ubi,
    volume: &str,
    staged: u32,
    current: Option<u32>,
) -> Result<Option<String>, UbiError> {
    let old = old_name(volume);
    let kept = match current {
        Some(cur) => {
            ubi.rename_volumes(&[(staged, volume), (cur, &old)])?;
            Some(old)
        }
        None => {
            ubi.rename_volumes(&[(staged, volume)])?;
            None
        }
    };
    ubi.sync()?;
    Ok(kept)
}

/// Opens what a journal record refers to; implemented by the agent (real
/// devices, staging files) and by tests (simulators).
pub trait RecoveryEnv {
    /// The verified image for `rec`, if it is still available.
    fn source(&mut self, rec: &TxRecord) -> Option<Box<dyn ImageSource>>;
    /// The raw partition `rec.target`.
    fn flash(&mut self, rec: &TxRecord) -> Result<&mut dyn Flash, TxError>;
    /// The UBI device `rec.target`.
    fn ubi(&mut self, rec: &TxRecord) -> Result<&mut dyn Ubi, TxError>;
}

/// One record and what recovering it gave.
pub type Recovered = (TxRecord, Result<Outcome, TxError>);

/// Recover every pending transaction. Each record is handled on its own, so
/// a target that cannot be opened does not hold up the others; only a journal
/// that cannot be read fails the whole call. Records that end torn or in
/// error are kept for the next attempt.
pub fn recover(
    journal: &mut dyn JournalStore,
    env: &mut dyn RecoveryEnv,
    progress: &mut dyn Progress,
) -> Result<Vec<Recovered>, JournalError> {
    let mut out = Vec::new();
    for rec in journal.load_all()? {
        let result = recover_one(journal, env, &rec, progress);
        out.push((rec, result));
    }
    Ok(out)
}

fn recover_one(
    journal: &mut dyn JournalStore,
    env: &mut dyn RecoveryEnv,
    rec: &TxRecord,
    progress: &mut dyn Progress,
) -> Result<Outcome, TxError> {
    let src = env.source(rec);
    let src = src.as_deref().filter(|s| source_matches(*s, rec));
    match rec.strategy {
        Strategy::Raw => recover_raw(env.flash(rec)?, journal, rec, src, progress),
        Strategy::UbiSwap | Strategy::UbiInPlace => {
            recover_ubi(env.ubi(rec)?, journal, rec, src, progress)
        }
    }
}

/// A source is only usable if it is exactly the recorded image (a swap record
/// still writing has no hash and needs no source).
fn source_matches(src: &dyn ImageSource, rec: &TxRecord) -> bool {
    !rec.image_sha256.is_empty()
        && src.len() == rec.image_size
        && src.sha256().ok().map(hex::encode).as_deref() == Some(rec.image_sha256.as_str())
}

/// Recover one raw-partition record; `src` must be the recorded image.
pub fn recover_raw(
    flash: &mut dyn Flash,
    journal: &mut dyn JournalStore,
    rec: &TxRecord,
    src: Option<&dyn ImageSource>,
    progress: &mut dyn Progress,
) -> Result<Outcome, TxError> {
    let sha = rec.sha256()?;
    let verified = match hash_image(flash, rec.image_size) {
        Ok(current) => current == Some(sha),
        // Unreadable means not the new image; the writer rewrites such blocks.
        Err(FlashError::Ecc { .. }) => false,
        Err(e) => return Err(RawError::from(e).into()),
    };
    if verified {
        flash.sync()?;
        journal.clear(&rec.key())?;
        return Ok(Outcome::Completed);
    }
    let Some(src) = src else {
        return Ok(Outcome::Torn {
            reason: format!(
                "raw partition {} was interrupted mid-write and the image source is gone; it is torn (neither image can be verified)",
                rec.target
            ),
        });
    };
    let report = write_raw(flash, src, &RawOptions::default(), progress)?;
    if report.sha256 != sha {
        return Err(RawError::Digest {
            expected: rec.image_sha256.clone(),
            got: hex::encode(report.sha256),
        }
        .into());
    }
    journal.clear(&rec.key())?;
    Ok(Outcome::Completed)
}

/// Recover one UBI record; `src` must be the recorded image.
pub fn recover_ubi(
    ubi: &mut dyn Ubi,
    journal: &mut dyn JournalStore,
    rec: &TxRecord,
    src: Option<&dyn ImageSource>,
    progress: &mut dyn Progress,
) -> Result<Outcome, TxError> {
    let name = rec.volume.clone().ok_or_else(|| JournalError::Corrupt {
        key: rec.key(),
        reason: "UBI record without a volume name".into(),
    })?;
    let outcome = match (rec.strategy, rec.phase) {
        (Strategy::UbiSwap, Phase::Writing) => {
            if let Some(v) = ubi.volume_by_name(&new_name(&name))? {
                ubi.remove_volume(v.id)?;
            }
            Outcome::RolledBack
        }
        (Strategy::UbiSwap, Phase::Switching) => finish_switch(ubi, rec, &name)?,
        (_, _) => return recover_in_place(ubi, journal, rec, &name, src, progress),
    };
    ubi.sync()?;
    journal.clear(&rec.key())?;
    Ok(outcome)
}

fn finish_switch(ubi: &mut dyn Ubi, rec: &TxRecord, name: &str) -> Result<Outcome, TxError> {
    let sha = rec.sha256()?;
    if let Some(staged) = ubi.volume_by_name(&new_name(name))? {
        if volume_matches(ubi, staged.id, rec.image_size, &sha)? {
            let current = ubi.volume_by_name(name)?.map(|v| v.id);
            switch(ubi, name, staged.id, current)?;
            return Ok(Outcome::Completed);
        }
        ubi.remove_volume(staged.id)?;
        return Ok(Outcome::RolledBack);
    }
    match ubi.volume_by_name(name)? {
        Some(v) if volume_matches(ubi, v.id, rec.image_size, &sha)? => Ok(Outcome::Completed),
        _ => Err(TxError::Verify {
            volume: name.to_string(),
        }),
    }
}

fn recover_in_place(
    ubi: &mut dyn Ubi,
    journal: &mut dyn JournalStore,
    rec: &TxRecord,
    name: &str,
    src: Option<&dyn ImageSource>,
    progress: &mut dyn Progress,
) -> Result<Outcome, TxError> {
    let sha = rec.sha256()?;
    let vol = ubi.volume_by_name(name)?.ok_or_else(|| TxError::Verify {
        volume: name.to_string(),
    })?;
    let outcome = if volume_matches(ubi, vol.id, rec.image_size, &sha)? {
        Outcome::Completed
    } else if let Some(src) = src {
        write_volume(ubi, vol.id, src, progress)?;
        if !volume_matches(ubi, vol.id, rec.image_size, &sha)? {
            return Err(TxError::Verify {
                volume: name.to_string(),
            });
        }
        Outcome::Completed
    } else if !vol.corrupted {
        // The update marker is clear, so the update never started: the old
        // image is intact.
        Outcome::RolledBack
    } else {
        return Ok(Outcome::Torn {
            reason: format!(
                "UBI volume {name:?} has an interrupted update and the image source is gone"
            ),
        });
    };
    ubi.sync()?;
    journal.clear(&rec.key())?;
    Ok(outcome)
}
