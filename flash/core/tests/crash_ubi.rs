//! Power-cut enumeration for UBI updates: swap (both outcomes of a torn
//! volume-table write, with and without a previous rollback copy, with tight
//! space) and in place, with recovery itself interrupted too. Each case runs on
//! a device that keeps every completed change, one that loses what was not
//! synced (UBI on block2mtd) and one that keeps part of it; power is also cut
//! right after the update and right after recovery returned, which must change
//! nothing: done means durable.

mod common;

use common::{outcomes, pattern, ubi_boots, SimEnv};
use liminix_flash::sim::VtblTear;
use liminix_flash::txn::{recover, Outcome};
use liminix_flash::ubi_update::old_name;
use liminix_flash::{
    update_ubi, JournalStore, MemImage, NoProgress, SimJournal, SimUbi, TxError, Ubi, UbiOptions,
    Unsynced, VolKind,
};

/// What a cut does to unsynced changes, each case tried with every one.
const UNSYNCED: [Unsynced; 3] = [Unsynced::Kept, Unsynced::Lost, Unsynced::FirstKept(2)];

const LEB: u64 = 1024;
const NAME: &str = "rootfs";

#[derive(Clone)]
struct UbiCase {
    name: &'static str,
    total_lebs: u64,
    /// Previous rollback copy present before the update.
    prior_old: Option<Vec<u8>>,
    old: Vec<u8>,
    new: Vec<u8>,
    opts: UbiOptions,
    tear: VtblTear,
    kind: VolKind,
}

fn fresh(c: &UbiCase, unsynced: Unsynced) -> (SimUbi, SimJournal) {
    let mut u = SimUbi::new(c.total_lebs, LEB);
    u.rail().set_unsynced(unsynced);
    u.set_vtbl_tear(c.tear);
    u.load_volume_kind(NAME, 12 * LEB, c.kind, &c.old);
    if let Some(p) = &c.prior_old {
        u.load_volume_kind(&old_name(NAME), 12 * LEB, c.kind, p);
    }
    let j = SimJournal::new(u.rail().clone());
    (u, j)
}

fn update(c: &UbiCase, u: &mut SimUbi, j: &mut SimJournal) -> Result<(), TxError> {
    update_ubi(
        u,
        j,
        "ubi0",
        NAME,
        &MemImage(c.new.clone()),
        &c.opts,
        &mut NoProgress,
    )
    .map(|_| ())
}

fn crashed(c: &UbiCase, unsynced: Unsynced, k: u64) -> (SimUbi, SimJournal) {
    let (mut u, mut j) = fresh(c, unsynced);
    u.rail().cut_after(k);
    let err = update(c, &mut u, &mut j).expect_err("must be cut");
    assert!(err.is_power_cut(), "{} {unsynced:?} k={k}: {err}", c.name);
    u.rail().reboot();
    (u, j)
}

/// Power fails right after a call returned, and comes back.
fn cut_now(u: &SimUbi) {
    u.rail().cut_now();
    u.rail().reboot();
}

fn do_recover(
    u: &mut SimUbi,
    j: &mut SimJournal,
    image: Option<&[u8]>,
) -> Result<Vec<Outcome>, TxError> {
    let mut env = SimEnv {
        flash: None,
        ubi: Some(u),
        image: image.map(<[u8]>::to_vec),
    };
    outcomes(recover(j, &mut env, &mut NoProgress)?)
}

fn is_swap(c: &UbiCase) -> bool {
    !c.opts.force_in_place
}

/// After recovery: exactly old or new boots, nothing half-made is left, and
/// after a swap to new the old image is intact as the rollback copy.
fn check(c: &UbiCase, u: &mut SimUbi, j: &mut SimJournal, k: u64) -> &'static str {
    assert!(
        j.load_all().unwrap().is_empty(),
        "{} k={k}: journal not cleared",
        c.name
    );
    let boots = ubi_boots(u, NAME, &c.old, &c.new);
    let Some(b) = boots else {
        panic!(
            "{} k={k}: neither image boots: {:?}",
            c.name,
            u.volumes().unwrap()
        );
    };
    assert!(
        u.volume_by_name(&format!("{NAME}.new")).unwrap().is_none(),
        "{} k={k}",
        c.name
    );
    if is_swap(c) && b == "new" {
        assert_eq!(
            ubi_boots(u, &old_name(NAME), &[], &c.old),
            Some("new"),
            "{} k={k}: rollback copy",
            c.name
        );
    }
    b
}

fn run_case(c: &UbiCase) -> u64 {
    UNSYNCED.iter().map(|&u| run_case_with(c, u)).sum()
}

fn run_case_with(c: &UbiCase, unsynced: Unsynced) -> u64 {
    let (mut u, mut j) = fresh(c, unsynced);
    update(c, &mut u, &mut j).unwrap();
    let total = u.rail().ops();
    cut_now(&u);
    assert_eq!(
        check(c, &mut u, &mut j, total),
        "new",
        "{} {unsynced:?}: a cut right after the update returned lost it",
        c.name
    );
    let mut points = 0;
    let mut seen = [0u64; 2];
    for k in 0..total {
        let (mut u, mut j) = crashed(c, unsynced, k);
        if is_swap(c) {
            // The swap is atomic even before recovery runs.
            assert!(
                ubi_boots(&mut u, NAME, &c.old, &c.new).is_some(),
                "{} {unsynced:?} k={k}",
                c.name
            );
        }
        let base = u.rail().ops();
        do_recover(&mut u, &mut j, Some(&c.new)).unwrap();
        let rec_ops = u.rail().ops() - base;
        let after = check(c, &mut u, &mut j, k);
        cut_now(&u);
        assert_eq!(
            check(c, &mut u, &mut j, k),
            after,
            "{} {unsynced:?} k={k}: a cut right after recovery returned undid it",
            c.name
        );
        seen[usize::from(after == "new")] += 1;
        points += 1 + without_source(c, unsynced, k);
        // The cut right after recovery checks that what it did is durable;
        // cuts inside it are tried on the first setting only, to keep the run short.
        if unsynced == Unsynced::Kept {
            points += nested(c, unsynced, k, rec_ops);
        }
    }
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "{} {unsynced:?}: both outcomes must occur: {seen:?}",
        c.name
    );
    eprintln!(
        "{} {unsynced:?}: {total} update ops, {points} crash points tried (old/new after recovery: {seen:?})",
        c.name
    );
    points
}

fn nested(c: &UbiCase, unsynced: Unsynced, k: u64, rec_ops: u64) -> u64 {
    for k2 in 0..rec_ops {
        let (mut u, mut j) = crashed(c, unsynced, k);
        u.rail().cut_after(k2);
        let err = do_recover(&mut u, &mut j, Some(&c.new)).expect_err("recovery must be cut");
        assert!(err.is_power_cut(), "{err}");
        u.rail().reboot();
        do_recover(&mut u, &mut j, Some(&c.new)).unwrap();
        check(c, &mut u, &mut j, k);
    }
    rec_ops
}

fn without_source(c: &UbiCase, unsynced: Unsynced, k: u64) -> u64 {
    let (mut u, mut j) = crashed(c, unsynced, k);
    let out = do_recover(&mut u, &mut j, None).unwrap();
    match out.as_slice() {
        [Outcome::Torn { reason }] => {
            assert!(!is_swap(c), "a swap never needs the source: {reason}");
            assert_eq!(
                ubi_boots(&mut u, NAME, &c.old, &c.new),
                None,
                "torn means the volume is marked"
            );
            assert_eq!(j.load_all().unwrap().len(), 1);
            assert_eq!(
                do_recover(&mut u, &mut j, Some(&c.new)).unwrap(),
                vec![Outcome::Completed]
            );
        }
        [Outcome::RolledBack] => assert_eq!(ubi_boots(&mut u, NAME, &c.old, &c.new), Some("old")),
        [Outcome::Completed] => assert_eq!(ubi_boots(&mut u, NAME, &c.old, &c.new), Some("new")),
        [] => {}
        other => panic!("{}: {other:?}", c.name),
    }
    check(c, &mut u, &mut j, k);
    1
}

fn cases() -> Vec<UbiCase> {
    let base = UbiCase {
        name: "",
        total_lebs: 60,
        prior_old: None,
        old: pattern(1, 10 * LEB as usize + 17),
        new: pattern(2, 11 * LEB as usize - 3),
        opts: UbiOptions::default(),
        tear: VtblTear::OldWins,
        kind: VolKind::Dynamic,
    };
    let mut sparse = base.new.clone();
    sparse[3 * LEB as usize..6 * LEB as usize].fill(0xFF);
    vec![
        UbiCase {
            name: "swap, torn vtbl keeps old table",
            ..base.clone()
        },
        UbiCase {
            name: "swap, torn vtbl applies new table",
            tear: VtblTear::NewWins,
            ..base.clone()
        },
        UbiCase {
            name: "swap over a previous rollback copy, tight space",
            total_lebs: 30,
            prior_old: Some(pattern(3, 9 * LEB as usize)),
            tear: VtblTear::NewWins,
            ..base.clone()
        },
        UbiCase {
            name: "swap of a static volume (kernel-style)",
            kind: VolKind::Static,
            tear: VtblTear::NewWins,
            ..base.clone()
        },
        UbiCase {
            name: "swap over a previous rollback copy, roomy, sparse image",
            prior_old: Some(pattern(3, 9 * LEB as usize)),
            new: sparse,
            ..base.clone()
        },
    ]
}

#[test]
fn ubi_swap_crash_at_every_op() {
    let points: u64 = cases().iter().map(run_case).sum();
    assert!(points > 100, "{points}");
}

#[test]
fn ubi_in_place_crash_at_every_op() {
    let opts = UbiOptions {
        force_in_place: true,
        ..UbiOptions::default()
    };
    let mut points = 0;
    for tear in [VtblTear::OldWins, VtblTear::NewWins] {
        let c = UbiCase {
            name: if tear == VtblTear::OldWins {
                "in place (old vtbl wins)"
            } else {
                "in place (new vtbl wins)"
            },
            tear,
            opts: opts.clone(),
            ..cases().remove(0)
        };
        points += run_case(&c);
    }
    assert!(points > 50, "{points}");
}
