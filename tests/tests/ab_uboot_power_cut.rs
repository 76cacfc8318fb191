//! Real power cuts during an A/B install under real U-Boot: QEMU is killed (no flush,
//! no shutdown) at several moments after the agent in slot A starts writing slot B.
//! The next power-on must boot a complete slot to userland — A with its old image,
//! or B with the whole new one — and a retried install must then bring up B.

use std::time::Duration;

use liminix_vm::arm::{ArmBed, Variant};

const T: Duration = Duration::from_secs(300);

/// Which slot and version the guest came up with.
fn came_up(con: &str) -> (String, String) {
    let slot = con
        .lines()
        .find_map(|l| l.strip_prefix("liminix-ab: booting slot "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("U-Boot picked no slot:\n{con}"))
        .to_string();
    let version = con
        .lines()
        .find_map(|l| l.strip_prefix("AB-GUEST version="))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("slot {slot} did not reach userland:\n{con}"))
        .to_string();
    (slot, version)
}

#[test]
fn cut_during_install_always_boots_a_complete_slot() {
    let bed = ArmBed::new(2).unwrap_or_else(|e| panic!("test bed: {e}"));
    let a_old = bed.slot_bytes(0).unwrap();
    let b = bed.slot_image(Variant::Good, "b-2", 2).unwrap();
    let b_new = std::fs::read(&b.path).unwrap();
    bed.put_boot_file(&b.path, "new.img").unwrap();
    let step = format!(
        "echo AB-WRITING\nab_apply qemu-arm-ab kernel=/boot/new.img:{} && echo AB-APPLIED\n",
        b.sha256
    );
    for delay_ms in [300u64, 2500] {
        bed.set_step(&step).unwrap();
        let cut = bed
            .boot_cut(T, "AB-WRITING", Duration::from_millis(delay_ms))
            .unwrap_or_else(|e| panic!("{e}"));
        eprintln!("==== cut after {delay_ms} ms ====\n{cut}");
        assert!(cut.contains("AB-GUEST version=a-1"), "{cut}");
        // Where the cut landed (timing-dependent, so reported rather than asserted).
        let on_disk = bed.slot_bytes(1).unwrap();
        let done = on_disk
            .chunks(64 << 10)
            .zip(b_new.chunks(64 << 10))
            .filter(|(d, n)| d == n)
            .count();
        eprintln!(
            "cut after {delay_ms} ms: {done} of {} blocks of B hold the new image",
            b_new.len() >> 16
        );
        bed.set_step("").unwrap();
        let con = bed.boot(T).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("==== next power-on ====\n{con}");
        match came_up(&con) {
            (s, v) if s == "a" && v == "a-1" => assert_eq!(bed.slot_bytes(0).unwrap(), a_old),
            (s, v) if s == "b" && v == "b-2" => {
                assert_eq!(bed.slot_bytes(1).unwrap(), b_new);
                return; // the install had armed B before the cut: nothing left to retry
            }
            other => panic!("booted {other:?}:\n{con}"),
        }
    }
    // Back on A after every cut: an uncut install completes and B comes up.
    bed.set_step(&step).unwrap();
    let con = bed.boot(T).unwrap_or_else(|e| panic!("{e}"));
    assert!(con.contains("AB-APPLIED"), "{con}");
    let con = bed.boot(T).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(came_up(&con), ("b".into(), "b-2".into()), "{con}");
    assert_eq!(bed.slot_bytes(1).unwrap(), b_new);
}
