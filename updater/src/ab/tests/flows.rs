//! Both flows through whole cycles, with the Zyxel bytes checked against golden values
//! and the vendor U-Boot model (docs/formats/zyxel-bootconfig.md).

use liminix_bootenv::Env;

use super::world::{Images, Kind, World};
use crate::ab::uboot::{script_boot_decision, uboot_state};
use crate::ab::{AbError, RefusedError, Slot, VerifyError};
use liminix_flash::RawError;

fn bc_bytes(w: &World) -> [u8; 2] {
    let c = w.boot[0].borrow();
    [c.contents()[0], c.contents()[1]]
}

fn zyxel_world() -> (World, Images) {
    let w = World::new(Kind::Zyxel, &Images::new(1), Some(&Images::new(2)));
    // image 0 valid, image 1 valid, active 0
    w.factory_state([0x88, 0x00], "");
    (w, Images::new(3))
}

#[test]
fn zyxel_good_update_golden_bytes() {
    let (mut w, new) = zyxel_world();
    w.install(Slot::B, &new).unwrap();
    // image 1 NEW (1<<6), image 0 VALID (2<<2), active 0
    assert_eq!(bc_bytes(&w), [0x48, 0x00]);
    assert!(w.holds(Slot::B, &new));
    // vendor: boots image 1 after turning it into FAIL (3<<6)
    assert_eq!(w.reset(), Slot::B);
    assert_eq!(bc_bytes(&w), [0xC8, 0x00]);
    w.flow().mark_good(Slot::B).unwrap();
    // image 1 VALID, active 1
    assert_eq!(bc_bytes(&w), [0x88, 0x01]);
    for _ in 0..3 {
        assert_eq!(w.reset(), Slot::B, "stays on B across resets");
    }
    assert_eq!(bc_bytes(&w), [0x88, 0x01]);
}

#[test]
fn zyxel_unconfirmed_trial_falls_back_and_mark_bad_writes_nothing() {
    let (mut w, new) = zyxel_world();
    w.install(Slot::B, &new).unwrap();
    assert_eq!(w.reset(), Slot::B);
    // B never confirms: the next reset is A
    assert_eq!(w.reset(), Slot::A);
    let st = w.flow().state().unwrap();
    assert_eq!(st.committed, Slot::A);
    assert!(st.is_failed(Slot::B) && st.trying.is_none());
    let before = w.ops();
    w.flow().mark_bad(Slot::B).unwrap();
    assert_eq!(
        w.ops(),
        before,
        "U-Boot already wrote FAIL: no erase needed"
    );
    assert_eq!(bc_bytes(&w), [0xC8, 0x00]);
}

#[test]
fn an_image_changed_since_verification_is_refused_before_any_write() {
    let (mut w, new) = zyxel_world();
    let before = (bc_bytes(&w), w.kernel[1].borrow().contents().to_vec());
    let e = w
        .install_claiming(Slot::B, &new, Some([7; 32]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            AbError::Verify(VerifyError::Scan {
                what: "kernel",
                source: RawError::NotVerified { .. }
            })
        ),
        "{e}"
    );
    let after = (bc_bytes(&w), w.kernel[1].borrow().contents().to_vec());
    assert!(before == after, "bootconfig and slot B untouched");
}

#[test]
fn zyxel_refuses_to_overwrite_the_active_image() {
    let (mut w, new) = zyxel_world();
    let before = w.ops();
    // active is 0 = A: writing A is refused before anything is written
    let e = w.install(Slot::A, &new).unwrap_err();
    assert!(
        matches!(e, AbError::Refused(RefusedError::ActiveImage(Slot::A))),
        "{e}"
    );
    assert_eq!(w.ops(), before);
    assert!(w.holds(Slot::A, &Images::new(1)));
}

#[test]
fn zyxel_explicit_rollback_cancels_trial() {
    let (mut w, new) = zyxel_world();
    w.install(Slot::B, &new).unwrap();
    w.flow().set_committed(Slot::A).unwrap();
    // image 1 NONE, image 0 VALID, active 0
    assert_eq!(bc_bytes(&w), [0x08, 0x00]);
    assert_eq!(w.reset(), Slot::A);
}

fn uboot_world(attempts: u8) -> (World, Images) {
    let w = World::new(
        Kind::UBoot { attempts },
        &Images::new(1),
        Some(&Images::new(2)),
    );
    w.factory_state([0; 2], "bootdelay=0\nab_boot=a\n");
    (w, Images::new(3))
}

fn env(w: &World) -> Env {
    w.env_store().load().unwrap().env
}

#[test]
fn uboot_good_update_counts_down_then_stays() {
    let (mut w, new) = uboot_world(3);
    w.install(Slot::B, &new).unwrap();
    let e = env(&w);
    assert_eq!(e.get_str("ab_try").as_deref(), Some("b"));
    assert_eq!(e.get_str("ab_left").as_deref(), Some("3"));
    assert_eq!(e.get_str("bootdelay").as_deref(), Some("0"), "others kept");
    assert_eq!(w.reset(), Slot::B);
    assert_eq!(env(&w).get_str("ab_left").as_deref(), Some("2"));
    w.flow().mark_good(Slot::B).unwrap();
    let e = env(&w);
    assert_eq!(e.get_str("ab_boot").as_deref(), Some("b"));
    assert_eq!(e.get_str("ab_try").as_deref(), Some("none"));
    let store_flags = w.env_store().load().unwrap().flags;
    for _ in 0..3 {
        assert_eq!(w.reset(), Slot::B);
    }
    assert_eq!(
        w.env_store().load().unwrap().flags,
        store_flags,
        "a confirmed system boots without environment writes"
    );
}

#[test]
fn uboot_unconfirmed_trial_uses_its_attempts_then_falls_back() {
    let (mut w, new) = uboot_world(2);
    w.install(Slot::B, &new).unwrap();
    assert_eq!(w.reset(), Slot::B);
    assert_eq!(w.reset(), Slot::B);
    assert_eq!(w.reset(), Slot::A);
    let st = uboot_state(&env(&w));
    assert_eq!(st.committed, Slot::A);
    assert!(st.is_failed(Slot::B));
    assert_eq!(w.reset(), Slot::A);
    // A new install into B clears the failure and starts a new trial.
    w.install(Slot::B, &Images::new(4)).unwrap();
    let st = uboot_state(&env(&w));
    assert!(!st.is_failed(Slot::B));
    assert_eq!(st.trying, Some((Slot::B, 2)));
}

#[test]
fn uboot_attempts_outside_one_digit_are_refused() {
    let (w, _) = uboot_world(2);
    for bad in [0u8, 10] {
        assert!(crate::ab::UBootEnvFlow::new(w.env_store(), bad).is_err());
    }
}

#[test]
fn script_model_on_hand_written_environments() {
    let e = |t: &str| Env::from_text(t.as_bytes()).unwrap();
    // nothing set: slot a, no write
    assert_eq!(script_boot_decision(&e("")), (Slot::A, None));
    let (s, next) = script_boot_decision(&e("ab_boot=a\nab_try=b\nab_left=1\n"));
    assert_eq!(s, Slot::B);
    assert_eq!(next.unwrap().get_str("ab_left").as_deref(), Some("0"));
    let (s, next) = script_boot_decision(&e("ab_boot=a\nab_try=b\nab_left=0\n"));
    assert_eq!(s, Slot::A);
    let next = next.unwrap();
    assert_eq!(next.get_str("ab_failed").as_deref(), Some("b"));
    assert_eq!(next.get_str("ab_try").as_deref(), Some("none"));
}
