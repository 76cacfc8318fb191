//! The agent's real setup around the simulator: a file-backed journal in a
//! directory and the verified image in a staging file. A crash mid-write is
//! followed by a "restart" that reopens the journal from disk.

mod common;

use std::path::PathBuf;

use common::{factory_load, outcomes, pattern, raw_boots, Passes};
use liminix_flash::txn::{recover, Outcome, RecoveryEnv, TxError};
use liminix_flash::{
    update_raw, FileImage, FileJournal, Flash, ImageSource, JournalStore, NoProgress, Progress,
    RawOptions, SimFlash, TxRecord, Ubi,
};

const EB: usize = 4096;

/// Re-opens the staging file named in the record, as the agent does.
struct StagingEnv<'a> {
    flash: &'a mut SimFlash,
}

impl RecoveryEnv for StagingEnv<'_> {
    fn source(&mut self, rec: &TxRecord) -> Option<Box<dyn ImageSource>> {
        let path = PathBuf::from(rec.source_hint.as_ref()?);
        FileImage::new(path)
            .ok()
            .map(|f| Box::new(f) as Box<dyn ImageSource>)
    }
    fn flash(&mut self, _rec: &TxRecord) -> Result<&mut dyn Flash, TxError> {
        Ok(self.flash)
    }
    fn ubi(&mut self, rec: &TxRecord) -> Result<&mut dyn Ubi, TxError> {
        Err(TxError::Target {
            target: rec.target.clone(),
            reason: "raw only".into(),
        })
    }
}

struct Setup {
    dir: tempfile::TempDir,
    flash: SimFlash,
    old: Vec<u8>,
    new: Vec<u8>,
    staging: PathBuf,
}

fn crashed_mid_write() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let old = pattern(1, 12 * EB);
    let new = pattern(2, 12 * EB);
    let staging = dir.path().join("staging.img");
    std::fs::write(&staging, &new).unwrap();
    let mut flash = SimFlash::nand(16, EB as u32, 512);
    factory_load(&mut flash, &old);
    let mut journal = FileJournal::open(dir.path().join("persist/.liminix/journal")).unwrap();
    flash.cut_after(40);
    let src = FileImage::new(&staging).unwrap();
    let err = update_raw(
        &mut flash,
        &mut journal,
        "mtd:firmware",
        &src,
        &RawOptions::default(),
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(err.is_power_cut(), "{err}");
    flash.reboot();
    assert_eq!(
        raw_boots(&mut flash, &old, &new),
        None,
        "torn after the crash"
    );
    Setup {
        dir,
        flash,
        old,
        new,
        staging,
    }
}

fn restart(s: &mut Setup) -> (FileJournal, Vec<Outcome>) {
    let mut journal = FileJournal::open(s.dir.path().join("persist/.liminix/journal")).unwrap();
    let mut env = StagingEnv {
        flash: &mut s.flash,
    };
    let out = outcomes(recover(&mut journal, &mut env, &mut NoProgress).unwrap()).unwrap();
    (journal, out)
}

#[test]
fn restart_completes_from_the_staging_file() {
    let mut s = crashed_mid_write();
    let (mut journal, out) = restart(&mut s);
    assert_eq!(out, vec![Outcome::Completed]);
    assert!(journal.load_all().unwrap().is_empty());
    assert_eq!(raw_boots(&mut s.flash, &s.old, &s.new), Some("new"));
}

#[test]
fn missing_staging_file_reports_torn_and_keeps_the_record() {
    let mut s = crashed_mid_write();
    std::fs::remove_file(&s.staging).unwrap();
    let (mut journal, out) = restart(&mut s);
    assert!(
        matches!(&out[..], [Outcome::Torn { reason }] if reason.contains("torn")),
        "{out:?}"
    );
    assert_eq!(journal.load_all().unwrap().len(), 1);
    // Putting the verified image back lets the next start finish the job.
    std::fs::write(&s.staging, &s.new).unwrap();
    let (_, out) = restart(&mut s);
    assert_eq!(out, vec![Outcome::Completed]);
    assert_eq!(raw_boots(&mut s.flash, &s.old, &s.new), Some("new"));
}

#[test]
fn altered_staging_file_is_not_trusted() {
    let mut s = crashed_mid_write();
    let mut wrong = s.new.clone();
    wrong[5] ^= 1;
    std::fs::write(&s.staging, &wrong).unwrap();
    let (_, out) = restart(&mut s);
    assert!(matches!(&out[..], [Outcome::Torn { .. }]), "{out:?}");
    assert_eq!(
        raw_boots(&mut s.flash, &s.old, &s.new),
        None,
        "nothing written from a wrong source"
    );
}

/// A 12-block image on NAND flash that differs from it in blocks 2 and 7, and
/// an empty journal.
fn two_changed_blocks() -> (tempfile::TempDir, SimFlash, FileJournal, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let old = pattern(1, 12 * EB);
    let new = common::change_blocks(&old, EB, &[2, 7]);
    let mut flash = SimFlash::nand(16, EB as u32, 512);
    factory_load(&mut flash, &old);
    let journal = FileJournal::open(dir.path().join("j")).unwrap();
    (dir, flash, journal, old, new)
}

#[test]
fn the_image_is_read_twice_and_hashed_once() {
    let (_dir, mut flash, mut journal, old, new) = two_changed_blocks();
    let src = Passes::new(new.clone());
    let mut p = Stages::default();
    let opts = RawOptions {
        final_read_back: false,
        ..RawOptions::default()
    };
    let r = update_raw(&mut flash, &mut journal, "mtd:k", &src, &opts, &mut p).unwrap();
    assert_eq!(src.opens.get(), 2, "one compare pass, one write pass");
    assert_eq!(p.0, ["Comparing", "Writing"], "no separate hashing pass");
    assert_eq!(r.sha256, liminix_flash::image::sha256(&new));
    assert_eq!(r.rewritten_blocks, 2);
    assert_eq!(raw_boots(&mut flash, &old, &new), Some("new"));
}

#[test]
fn a_source_changed_after_the_compare_pass_is_not_written() {
    let (_dir, mut flash, mut journal, _, new) = two_changed_blocks();
    let mut src = Passes::new(new.clone());
    src.changed = common::change_blocks(&new, EB, &[7]);
    src.swap_at = 2;
    flash.reset_stats();
    let err = update_raw(
        &mut flash,
        &mut journal,
        "mtd:k",
        &src,
        &RawOptions::default(),
        &mut NoProgress,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("changed after it was hashed"), "{msg}");
    assert!(msg.contains(&format!("{:#x}", 7 * EB)), "{msg}");
    assert_eq!(
        flash.stats().erases,
        1,
        "block 2 was written, block 7 refused"
    );
    let rec = journal.load("mtd:k").unwrap().expect("the record stays");
    assert_eq!(
        rec.image_sha256,
        hex::encode(liminix_flash::image::sha256(&new))
    );
}

#[derive(Default)]
struct Stages(Vec<&'static str>);

impl Progress for Stages {
    fn begin(&mut self, stage: liminix_flash::progress::Stage, _total: u64) {
        use liminix_flash::progress::Stage::*;
        self.0.push(match stage {
            Hashing => "Hashing",
            Comparing => "Comparing",
            Writing => "Writing",
            Verifying => "Verifying",
        });
    }
}
