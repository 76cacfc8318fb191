//! Records as ramoops names and writes them (a dump starts with `Panic#C PartP`, its lines
//! carry `<level>[time]`), in a fake `/sys/fs/pstore` below a temporary root.

use super::*;

fn rec(name: &str, text: &str) -> Record {
    Record {
        name: name.into(),
        text: text.into(),
    }
}

const PANIC: &str = "Panic#1 Part1\n\
<6>[    5.100000] virtio_blk virtio0: [vda] 8192 512-byte logical blocks\n\
<5>[    6.200000] liminix-agent: receive: verified bundle of 3 store paths\n\
<5>[    6.300000] liminix-agent: apply: writing firmware to mtd:firmware\n\
<6>[    7.000000] sysrq: Trigger a crash\n\
<0>[    7.000100] Kernel panic - not syncing: sysrq triggered crash\n\
<4>[    7.000200] CPU: 0 PID: 80 Comm: sh Not tainted 6.1.0-57-amd64 #1\n";

#[test]
fn a_panic_with_the_agents_last_step() {
    let b = classify(&[rec("dmesg-ramoops-0", PANIC)]);
    assert_eq!(b.outcome, Outcome::Panic);
    assert_eq!(
        b.panic.as_deref(),
        Some("Kernel panic - not syncing: sysrq triggered crash")
    );
    assert_eq!(
        b.agent_last.as_deref(),
        Some("apply: writing firmware to mtd:firmware")
    );
    assert_eq!(
        b.last_lines.last().map(String::as_str),
        Some("CPU: 0 PID: 80 Comm: sh Not tainted 6.1.0-57-amd64 #1")
    );
    assert_eq!(b.last_lines[0], "Panic#1 Part1");
    assert_eq!(b.records, ["dmesg-ramoops-0"]);
}

#[test]
fn pmsg_tells_the_agents_last_step_first() {
    let b = classify(&[
        rec("dmesg-ramoops-0", PANIC),
        rec(
            "pmsg-ramoops-0",
            "liminix-agent: apply: firmware on mtd:firmware verified\n",
        ),
    ]);
    assert_eq!(b.outcome, Outcome::Panic);
    assert_eq!(
        b.agent_last.as_deref(),
        Some("apply: firmware on mtd:firmware verified")
    );
}

#[test]
fn oops_crash_kexec_and_clean() {
    let oops = "Oops#1 Part1\n<4>[ 3.0] BUG: kernel NULL pointer dereference\n";
    assert_eq!(
        classify(&[rec("dmesg-ramoops-0", oops)]).outcome,
        Outcome::Oops
    );
    // An oops that went on to panic is a panic.
    let both = [
        rec("dmesg-ramoops-0", oops),
        rec("dmesg-ramoops-1", &PANIC.replace("#1", "#2")),
    ];
    let b = classify(&both);
    assert_eq!(b.outcome, Outcome::Panic);
    assert!(b.panic.is_some());
    let emerg = "Emergency#1 Part1\n<0>[ 9.0] sysrq: Emergency Sync\n";
    assert_eq!(
        classify(&[rec("dmesg-ramoops-0", emerg)]).outcome,
        Outcome::Crash
    );
    let shutdown = "Shutdown#1 Part1\n<5>[ 9.0] kexec_core: Starting new kernel\n";
    assert_eq!(
        classify(&[rec("dmesg-ramoops-0", shutdown)]).outcome,
        Outcome::Kexec
    );
    let pmsg = "liminix-agent: apply: firmware on mtd:firmware verified\n\
                liminix-agent: kexec: /boot/new-kernel with the maintenance root\n";
    assert_eq!(
        classify(&[rec("pmsg-ramoops-0", pmsg)]).outcome,
        Outcome::Kexec
    );
    let quiet = "liminix-agent: apply: firmware on mtd:firmware verified\n";
    let b = classify(&[rec("pmsg-ramoops-0", quiet)]);
    assert_eq!(b.outcome, Outcome::Clean);
    assert_eq!(b.last_lines, [quiet.trim_start_matches("").trim_end()]);
    assert_eq!(classify(&[]).outcome, Outcome::Clean);
}

#[test]
fn the_newest_dump_tells_the_last_lines() {
    // Two dumps of two parts each: Part1 of #2 holds the end of the log.
    let recs = [
        rec("dmesg-ramoops-0", "Oops#1 Part1\n<4>[1.0] first oops\n"),
        rec("dmesg-ramoops-1", "Oops#1 Part2\n<4>[0.5] earlier\n"),
        rec("dmesg-ramoops-2", "Oops#2 Part1\n<4>[2.0] second oops\n"),
        rec("dmesg-ramoops-3", "Oops#2 Part2\n<4>[1.5] between\n"),
    ];
    let b = classify(&recs);
    assert_eq!(b.last_lines, ["Oops#2 Part1", "second oops"]);
}

fn root_with(records: &[(&str, &str)]) -> (tempfile::TempDir, DeviceRoot) {
    let t = tempfile::tempdir().unwrap();
    let root = DeviceRoot::new(t.path());
    std::fs::create_dir_all(root.pstore()).unwrap();
    for (n, text) in records {
        std::fs::write(root.pstore().join(n), text).unwrap();
    }
    (t, root)
}

#[test]
fn collect_moves_every_record_and_status_still_reads_them() {
    let (_t, root) = root_with(&[("dmesg-ramoops-0", PANIC), ("pmsg-ramoops-0", "x\n")]);
    assert!(previous_boot(&root).is_some());
    let c = collect(&root).unwrap();
    assert_eq!(c.moved, ["dmesg-ramoops-0", "pmsg-ramoops-0"]);
    assert!(
        !c.mounted,
        "a root without /proc/filesystems has no pstore to mount"
    );
    assert_eq!(std::fs::read_dir(root.pstore()).unwrap().count(), 0);
    let saved = root.previous_boot_log();
    assert_eq!(
        std::fs::read_to_string(saved.join("dmesg-ramoops-0")).unwrap(),
        PANIC
    );
    assert_eq!(
        std::fs::read_dir(&saved).unwrap().count(),
        2,
        "no temporary left"
    );
    // The A/B report and status read the saved copies.
    let recs = records(&root);
    assert_eq!(recs.len(), 2);
    assert_eq!(previous_boot(&root).unwrap().outcome, Outcome::Panic);
    // A second run (nothing left in pstore) moves nothing and keeps the copies.
    assert!(collect(&root).unwrap().moved.is_empty());
    assert_eq!(records(&root).len(), 2);
}

#[test]
fn nothing_to_tell_without_records() {
    let (_t, root) = root_with(&[]);
    assert!(previous_boot(&root).is_none());
    let c = collect(&root).unwrap();
    assert!(c.moved.is_empty());
    assert!(!root.previous_boot_log().exists());
}

#[test]
fn a_record_that_cannot_be_saved_stays_in_pstore() {
    let (_t, root) = root_with(&[("dmesg-ramoops-0", PANIC)]);
    // /run/log is a file: the copy cannot be made.
    std::fs::create_dir_all(root.join("/run")).unwrap();
    std::fs::write(root.join("/run/log"), "").unwrap();
    let e = collect(&root).unwrap_err();
    assert!(e.to_string().contains("previous-boot"), "{e}");
    assert!(root.pstore().join("dmesg-ramoops-0").exists());
}

#[test]
fn long_records_keep_their_header_and_their_end() {
    let mut big = String::from("Panic#1 Part1\n");
    while big.len() < 3 * KEEP {
        big.push_str("<6>[ 1.0] filler line of the kernel log\n");
    }
    big.push_str("<0>[ 2.0] Kernel panic - not syncing: at the end\n");
    let (_t, root) = root_with(&[("dmesg-ramoops-0", &big)]);
    let r = &records(&root)[0];
    assert!(r.text.len() < KEEP + 100);
    let b = previous_boot(&root).unwrap();
    assert_eq!(b.outcome, Outcome::Panic);
    assert_eq!(
        b.panic.as_deref(),
        Some("Kernel panic - not syncing: at the end")
    );
}

#[test]
fn a_trial_that_panicked_before_mark_good_is_reported() {
    let dump = "Panic#1 Part1\n\
<5>[    3.000000] liminix-agent: trial of firmware@0123456789abcdef: switching to the new root\n\
<0>[    3.500000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n";
    let b = classify(&[rec("dmesg-ramoops-0", dump)]);
    assert_eq!(
        b.failed_trial.as_deref(),
        Some("trial of firmware@0123456789abcdef failed: panic (Attempted to kill init! exitcode=0x00000100)")
    );
    assert!(render(&b).contains("trial of firmware@0123456789abcdef failed"));
    let confirmed = dump.replace("switching to the new root", "confirmed, flash written");
    assert_eq!(
        classify(&[rec("dmesg-ramoops-0", &confirmed)]).failed_trial,
        None
    );
    let clean = "liminix-agent: trial of firmware@01: started\n";
    assert_eq!(classify(&[rec("pmsg-ramoops-0", clean)]).failed_trial, None);
}
