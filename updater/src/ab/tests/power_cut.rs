//! Power cuts after every erase and program: of a slot install (kernel, rootfs and the
//! boot-state writes around them), of `mark_good`, and of `mark_bad`. After each cut
//! the boot loader must find its state loadable and boot a slot that holds a complete
//! image; a retried operation must then succeed.

use liminix_flash::Unsynced;

use super::world::{Images, Kind, World};
use crate::ab::Slot;

const KINDS: [Kind; 2] = [Kind::Zyxel, Kind::UBoot { attempts: 2 }];

/// Factory states: B holds an older image, or is erased; on Zyxel also B left NEW by an
/// install that was never booted.
fn worlds(kind: Kind) -> Vec<(&'static str, World)> {
    let a = Images::new(1);
    let old_b = Images::new(2);
    let mk = |b: Option<&Images>, bc: [u8; 2], env: &str| {
        let w = World::new(kind, &a, b);
        w.factory_state(bc, env);
        w
    };
    let mut out = vec![
        ("old B", mk(Some(&old_b), [0x88, 0], "ab_boot=a\n")),
        ("blank B", mk(None, [0x08, 0], "ab_boot=a\n")),
    ];
    out.push(match kind {
        Kind::Zyxel => ("B left NEW", mk(Some(&old_b), [0x48, 0], "")),
        Kind::UBoot { .. } => (
            "B left on trial",
            mk(Some(&old_b), [0; 2], "ab_boot=a\nab_try=b\nab_left=2\n"),
        ),
    });
    out
}

/// Enumerates cuts at k = 0, 1, … until `op` completes uncut, calling `check` after
/// every cut (power restored) and once after the uncut run, with the power cut right
/// after it returned: what it reported done must not be lost. All of it twice: on
/// flash that keeps every completed write (NAND) and on flash that loses what was
/// not synced (block2mtd). Returns the number of cuts.
fn enumerate(
    label: &str,
    make: &dyn Fn() -> World,
    op: &dyn Fn(&mut World) -> bool,
    check: &dyn Fn(&mut World, bool, u64),
) -> u64 {
    let cuts = [Unsynced::Kept, Unsynced::Lost].map(|unsynced| {
        enumerate_with(&format!("{label} {unsynced:?}"), unsynced, make, op, check)
    });
    cuts[0]
}

fn enumerate_with(
    label: &str,
    unsynced: Unsynced,
    make: &dyn Fn() -> World,
    op: &dyn Fn(&mut World) -> bool,
    check: &dyn Fn(&mut World, bool, u64),
) -> u64 {
    for k in 0.. {
        let mut w = make();
        w.rail.set_unsynced(unsynced);
        let start = w.ops();
        w.rail.cut_after(k);
        let done = op(&mut w);
        let was_cut = w.rail.is_dead();
        if done {
            w.rail.cut_now();
        }
        w.rail.reboot();
        assert!(done != was_cut, "k={k}: finished={done} but cut={was_cut}");
        check(&mut w, done, k);
        if done {
            assert!(w.ops() > start || k == 0);
            // --nocapture shows the count of every enumeration
            eprintln!("{label}: cut after each of its {k} flash operations, every cut left a bootable slot");
            return k;
        }
    }
    unreachable!()
}

#[test]
fn install_cut_anywhere_boots_a_complete_slot_and_retry_completes() {
    let new = Images::new(3);
    for kind in KINDS {
        for (name, _) in worlds(kind) {
            let make = || {
                worlds(kind)
                    .into_iter()
                    .find(|(n, _)| *n == name)
                    .unwrap()
                    .1
            };
            let cuts = enumerate(
                &format!("{kind:?} install ({name})"),
                &make,
                &|w| w.install(Slot::B, &new).is_ok(),
                &|w, done, k| {
                    let ctx = format!("{kind:?} {name} k={k}");
                    // Register the new image as complete for B even when the cut
                    // happened before install() could (it adds it first anyway).
                    let slot = w.reset();
                    assert!(
                        w.slot_complete(slot),
                        "{ctx}: booted incomplete slot {slot}"
                    );
                    if done {
                        assert_eq!(slot, Slot::B, "{ctx}");
                        assert!(w.holds(Slot::B, &new), "{ctx}");
                    } else if slot == Slot::A {
                        // The agent on A retries: it must complete and point at B.
                        w.install(Slot::B, &new)
                            .unwrap_or_else(|e| panic!("{ctx}: retry {e}"));
                        assert_eq!(w.reset(), Slot::B, "{ctx}");
                        assert!(w.holds(Slot::B, &new), "{ctx}");
                    }
                },
            );
            assert!(
                cuts > 20,
                "{kind:?} {name}: only {cuts} operations enumerated"
            );
        }
    }
}

/// A world where B was installed and booted once (on trial).
fn on_trial(kind: Kind) -> World {
    let mut w = worlds(kind).remove(0).1;
    w.install(Slot::B, &Images::new(3)).unwrap();
    assert_eq!(w.reset(), Slot::B);
    w
}

#[test]
fn mark_good_cut_anywhere_leaves_a_loadable_state_and_a_complete_slot() {
    for kind in KINDS {
        let cuts = enumerate(
            &format!("{kind:?} mark-good"),
            &|| on_trial(kind),
            &|w| w.flow().mark_good(Slot::B).is_ok(),
            &|w, done, k| {
                let slot = w.reset();
                assert!(w.slot_complete(slot), "{kind:?} k={k}: {slot}");
                if done {
                    for _ in 0..3 {
                        assert_eq!(w.reset(), Slot::B, "{kind:?}: B stays");
                    }
                }
            },
        );
        assert!(cuts >= 1, "{kind:?}");
    }
}

#[test]
fn mark_bad_after_fallback_cut_anywhere_keeps_a_on_a() {
    for kind in KINDS {
        let make = || {
            let w = on_trial(kind);
            while w.reset() != Slot::A {}
            w
        };
        enumerate(
            &format!("{kind:?} mark-bad after fallback"),
            &make,
            &|w| w.flow().mark_bad(Slot::B).is_ok(),
            &|w, done, k| {
                let slot = w.reset();
                assert!(w.slot_complete(slot), "{kind:?} k={k}");
                if done {
                    assert_eq!(slot, Slot::A, "{kind:?}");
                    assert!(w.flow().state().unwrap().is_failed(Slot::B));
                }
            },
        );
    }
}

#[test]
fn boot_loader_write_cut_anywhere_still_boots_a_complete_slot() {
    // The boot loader's own write (vendor NEW→FAIL, script count-down) is cut at every
    // operation; at the next power-on the state must load and pick a complete slot.
    for kind in KINDS {
        for k in 0.. {
            let mut w = worlds(kind).remove(0).1;
            w.install(Slot::B, &Images::new(3)).unwrap();
            w.rail.cut_after(k);
            let r = w.reset_may_cut();
            w.rail.reboot();
            let slot = w.reset();
            assert!(w.slot_complete(slot), "{kind:?} k={k}: {slot}");
            if r.is_ok() {
                eprintln!("{kind:?} boot-loader write: cut after each of its {k} operations");
                break;
            }
        }
    }
}
