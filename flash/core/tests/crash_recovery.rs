//! Power-cut enumeration: every program/erase/volume-table/journal operation
//! of a transaction is interrupted in turn (every k, not a sample); after the
//! "reboot" recovery runs and the image the bootloader would load must be
//! exactly the old or exactly the new one, verified by SHA-256. Recovery
//! itself is also interrupted at every operation for smaller cases.
//!
//! Every case runs on flash that keeps every completed write (NAND, NOR), on
//! flash that loses what was not synced (block2mtd), and on flash that keeps
//! part of it; and power is also cut right after the update and right after
//! recovery returned, which must change nothing: done means durable.

mod common;

use common::{change_blocks, factory_load, outcomes, pattern, raw_boots, SimEnv};
use liminix_flash::txn::{recover, Outcome};
use liminix_flash::{
    update_raw, JournalStore, MemImage, NoProgress, RawOptions, SimFlash, SimJournal, Unsynced,
};

/// What a cut does to unsynced writes, each case tried with every one.
const UNSYNCED: [Unsynced; 3] = [Unsynced::Kept, Unsynced::Lost, Unsynced::FirstKept(2)];

const EB: usize = 4096;

struct RawCase {
    name: &'static str,
    make: fn() -> SimFlash,
    old: Vec<u8>,
    new: Vec<u8>,
    nested: bool,
}

fn raw_fresh(case: &RawCase, u: Unsynced) -> (SimFlash, SimJournal) {
    let mut f = (case.make)();
    f.rail().set_unsynced(u);
    factory_load(&mut f, &case.old);
    let j = SimJournal::new(f.rail().clone());
    (f, j)
}

fn raw_update(
    f: &mut SimFlash,
    j: &mut SimJournal,
    img: &[u8],
) -> Result<(), liminix_flash::TxError> {
    let opts = RawOptions {
        program_chunk: Some(1024),
        ..RawOptions::default()
    };
    update_raw(
        f,
        j,
        "mtd:firmware",
        &MemImage(img.to_vec()),
        &opts,
        &mut NoProgress,
    )
    .map(|_| ())
}

fn raw_recover(f: &mut SimFlash, j: &mut SimJournal, image: Option<&[u8]>) -> Vec<Outcome> {
    let mut env = SimEnv {
        flash: Some(f),
        ubi: None,
        image: image.map(<[u8]>::to_vec),
    };
    outcomes(recover(j, &mut env, &mut NoProgress).unwrap()).unwrap()
}

/// Cut the update after k ops, reboot. Returns the state ready for recovery.
fn raw_crashed(case: &RawCase, u: Unsynced, k: u64) -> (SimFlash, SimJournal) {
    let (mut f, mut j) = raw_fresh(case, u);
    f.cut_after(k);
    let err = raw_update(&mut f, &mut j, &case.new).expect_err("must be cut");
    assert!(err.is_power_cut(), "{} {u:?}: k={k}: {err}", case.name);
    f.reboot();
    (f, j)
}

/// Power fails right after a call returned, and comes back.
fn cut_now(f: &mut SimFlash) {
    f.rail().cut_now();
    f.reboot();
}

fn check_raw(case: &RawCase, f: &mut SimFlash, j: &mut SimJournal, outcomes: &[Outcome], k: u64) {
    assert!(
        j.load_all().unwrap().is_empty(),
        "{} k={k}: journal not cleared",
        case.name
    );
    let boots = raw_boots(f, &case.old, &case.new);
    let want = if outcomes.is_empty() { "old" } else { "new" };
    assert_eq!(boots, Some(want), "{} k={k}: {outcomes:?}", case.name);
}

fn run_raw_case(case: &RawCase) -> u64 {
    UNSYNCED.iter().map(|&u| run_raw_case_with(case, u)).sum()
}

fn run_raw_case_with(case: &RawCase, u: Unsynced) -> u64 {
    let (mut f, mut j) = raw_fresh(case, u);
    raw_update(&mut f, &mut j, &case.new).unwrap();
    let total = f.rail().ops();
    cut_now(&mut f);
    assert_eq!(
        raw_boots(&mut f, &case.old, &case.new),
        Some("new"),
        "{} {u:?}: a cut right after the update returned lost it",
        case.name
    );
    let mut points = 0;
    for k in 0..total {
        let (mut f, mut j) = raw_crashed(case, u, k);
        let out = raw_recover(&mut f, &mut j, Some(&case.new));
        check_raw(case, &mut f, &mut j, &out, k);
        cut_now(&mut f);
        check_raw(case, &mut f, &mut j, &out, k);
        points += 1;
        points += raw_without_source(case, u, k);
        // The cut right after recovery checks that what it did is durable;
        // cuts inside it are tried on the first setting only, to keep the run short.
        if case.nested && u == Unsynced::Kept {
            points += raw_nested(case, u, k);
        }
    }
    eprintln!(
        "{} {u:?}: {total} update ops, {points} crash points tried",
        case.name
    );
    points
}

/// The staging file is gone: recovery must say "torn" unless the partition
/// verifies, keep the record, and finish once the source is back.
fn raw_without_source(case: &RawCase, u: Unsynced, k: u64) -> u64 {
    let (mut f, mut j) = raw_crashed(case, u, k);
    let out = raw_recover(&mut f, &mut j, None);
    match out.as_slice() {
        [] => assert_eq!(raw_boots(&mut f, &case.old, &case.new), Some("old")),
        [Outcome::Completed] => assert_eq!(raw_boots(&mut f, &case.old, &case.new), Some("new")),
        [Outcome::Torn { reason }] => {
            assert!(reason.contains("torn"), "{reason}");
            assert_eq!(j.load_all().unwrap().len(), 1, "torn record is kept");
            let out = raw_recover(&mut f, &mut j, Some(&case.new));
            assert_eq!(out, vec![Outcome::Completed]);
            check_raw(case, &mut f, &mut j, &out, k);
        }
        other => panic!("{} k={k}: unexpected {other:?}", case.name),
    }
    1
}

/// Interrupt recovery itself at every op, then recover again.
fn raw_nested(case: &RawCase, u: Unsynced, k: u64) -> u64 {
    let (mut f, mut j) = raw_crashed(case, u, k);
    let base = f.rail().ops();
    let out = raw_recover(&mut f, &mut j, Some(&case.new));
    let rec_ops = f.rail().ops() - base;
    let mut points = 0;
    for k2 in 0..rec_ops {
        let (mut f, mut j) = raw_crashed(case, u, k);
        f.cut_after(k2);
        let mut env = SimEnv {
            flash: Some(&mut f),
            ubi: None,
            image: Some(case.new.clone()),
        };
        let err = outcomes(recover(&mut j, &mut env, &mut NoProgress).unwrap())
            .expect_err("recovery must be cut");
        assert!(err.is_power_cut(), "{err}");
        f.reboot();
        let again = raw_recover(&mut f, &mut j, Some(&case.new));
        check_raw(case, &mut f, &mut j, &out, k);
        assert!(again.len() <= 1);
        points += 1;
    }
    points
}

fn nand_with_faults() -> SimFlash {
    let mut f = SimFlash::nand(28, EB as u32, 512);
    f.set_bad(4);
    f.set_bad(13);
    f.fail_erase(8);
    f
}

#[test]
fn raw_write_crash_at_every_op_nor() {
    let old = pattern(1, 20 * EB);
    let cases = [
        RawCase {
            name: "NOR few blocks changed",
            make: || SimFlash::nor(24, EB as u32),
            new: change_blocks(&old, EB, &[0, 9, 19]),
            old: old.clone(),
            nested: true,
        },
        RawCase {
            name: "NOR all blocks changed, longer image",
            make: || SimFlash::nor(24, EB as u32),
            new: pattern(2, 22 * EB - 300),
            old: old.clone(),
            nested: false,
        },
    ];
    let points: u64 = cases.iter().map(run_raw_case).sum();
    assert!(points > 100, "{points}");
}

#[test]
fn raw_write_crash_at_every_op_nand_with_bad_blocks() {
    let old = pattern(3, 18 * EB);
    let cases = [
        RawCase {
            name: "NAND bad+weak blocks, few changed",
            make: nand_with_faults,
            new: change_blocks(&old, EB, &[2, 7, 8, 15]),
            old: old.clone(),
            nested: false,
        },
        RawCase {
            name: "NAND bad+weak blocks, all changed, odd length",
            make: nand_with_faults,
            new: pattern(4, 19 * EB + 777),
            old,
            nested: false,
        },
        RawCase {
            name: "NAND small, bad+weak, all changed (nested recovery cuts)",
            make: || {
                let mut f = SimFlash::nand(8, EB as u32, 1024);
                f.set_bad(2);
                f.fail_erase(4);
                f
            },
            new: pattern(6, 5 * EB + 100),
            old: pattern(5, 5 * EB),
            nested: true,
        },
    ];
    let points: u64 = cases.iter().map(run_raw_case).sum();
    assert!(points > 200, "{points}");
}
