//! What the agent's flash commands must report on any guest, x86_64 or MIPS: the parts of
//! the scenarios that `vm_agent_flash` and `mips_agent_vm` share. Each guest adds its own
//! cross-checks (mtd-utils on x86_64, read-backs by busybox on MIPS) through the tags it
//! names here.

use liminix_tests::data::pattern;
use liminix_vm::VmOutput;

pub const KB128: usize = 128 * 1024;
pub const KB64: usize = 64 * 1024;

/// The images the shared scenarios write, by the name each guest gives them under `/img`: the
/// checks below depend on their sizes and on which blocks differ.
pub fn images() -> Vec<(&'static str, Vec<u8>)> {
    let a = pattern(1, 1_500_000);
    let n1 = pattern(4, 1_000_000);
    vec![
        ("a", a.clone()),
        ("b", changed(&a, KB128, &[3, 9])),
        ("toobig", pattern(3, 14 * KB128 + 1)),
        ("r1", pattern(5, 1_500_000)),
        ("r2", pattern(6, 1_400_000)),
        ("d", pattern(8, 1_000_000)),
        ("n1", n1.clone()),
        ("n2", changed(&n1, KB64, &[0, 14])),
        ("s", pattern(9, 100_000)),
    ]
}

/// `data` with one byte changed in each of `blocks` (of `bs` bytes).
pub fn changed(data: &[u8], bs: usize, blocks: &[usize]) -> Vec<u8> {
    let mut d = data.to_vec();
    for b in blocks {
        d[b * bs + 11] ^= 0xA5;
    }
    d
}

/// `flashcp` on nandsim partition 0 (16 blocks, 2 and 5 bad): a first write, a changed image
/// through the `flashcp` name, the same image again, too big an image (refused with a journal
/// directory of its own, which must not be left behind), a bad option. `read_back`
/// is the guest's tag for the content check of the second write.
pub fn check_raw_nand(out: &VmOutput, read_back: &str) {
    let a = out.json_rc("raw-a").1;
    assert_eq!(a["blocks"], 12, "{a}");
    assert_eq!(
        a["rewritten_blocks"], 12,
        "blank flash: every block differs"
    );
    assert_eq!(a["skipped_bad_blocks"], 2);
    assert_eq!(a["target"], "mtd:NAND simulator partition 0");
    assert!(
        out.serial.contains("raw-b-log /dev/mtd0: 1500000 bytes in 12 blocks: 2 rewritten, 10 unchanged, 2 bad skipped"),
        "the name `flashcp` runs the agent, only changed blocks are erased; {}",
        out.serial
    );
    let b2 = out.json_rc("raw-b2").1;
    assert_eq!(b2["rewritten_blocks"], 0, "{b2}");
    assert_eq!(out.require_field(&format!("{read_back} "), "equal"), "1");
    assert_eq!(out.require_field("too-big ", "rc"), "5", "no space");
    assert!(
        out.serial.contains("image of 1835009 bytes does not fit"),
        "{}",
        out.serial
    );
    assert_eq!(out.require_field("untouched-nand ", "equal"), "1");
    assert_eq!(
        out.require_field("refused-journal-left ", "count"),
        "0",
        "a refusal leaves no journal directory behind"
    );
    assert_eq!(out.require_field("usage ", "rc"), "2");
    assert!(out.serial.contains("flashcp: unsupported option -x"));
    assert_eq!(out.require_field("staging-left ", "count"), "0");
    assert_eq!(out.require_field("records-left ", "count"), "0");
}

/// `flashcp` on mtdram (NOR, 64 KiB blocks): a first write, two changed blocks, `-A`.
/// `read_back` and `read_back_small` are the guest's tags for the content checks.
pub fn check_nor(out: &VmOutput, read_back: &str, read_back_small: &str) {
    assert_eq!(out.json_rc("nor-n1").1["rewritten_blocks"], 16);
    let n2 = out.json_rc("nor-n2").1;
    assert_eq!(n2["rewritten_blocks"], 2, "{n2}");
    assert_eq!(n2["unchanged_blocks"], 14);
    assert_eq!(out.require_field(&format!("{read_back} "), "equal"), "1");
    let e = out.json_rc("nor-erase-all").1;
    assert_eq!(e["rewritten_blocks"], 2, "{e}");
    assert_eq!(e["erased_after_image"], 14, "{e}");
    assert_eq!(
        out.require_field(&format!("{read_back_small} "), "equal"),
        "1"
    );
    assert_eq!(out.require_field("nor-tail ", "nonblank"), "0");
}

/// `ubi-update` of `rootfs` by a swap that keeps the old volume as `rootfs.old`.
pub fn check_ubi_swap(out: &VmOutput) {
    let s = out.json_rc("swap").1;
    assert_eq!(s["strategy"], "swap", "{s}");
    assert_eq!(s["volume_id"], 1);
    assert_eq!(s["old_kept_as"], "rootfs.old");
    assert_eq!(out.require_field("swap-new ", "equal"), "1");
    assert_eq!(
        out.require_field("swap-old ", "equal"),
        "1",
        "old kept for rollback"
    );
}

/// `ubi-update` on a UBI device without room for a swap: refused without `--in-place`,
/// refused while mounted, then done in place.
pub fn check_ubi_in_place(out: &VmOutput) {
    assert_eq!(out.require_field("no-room ", "rc"), "5");
    assert!(
        out.serial.contains("in-place not allowed"),
        "{}",
        out.serial
    );
    assert_eq!(out.require_field("mounted ", "rc"), "4");
    assert!(
        out.serial.contains("it is mounted on /mnt"),
        "{}",
        out.serial
    );
    let ip = out.json_rc("in-place").1;
    assert_eq!(ip["strategy"], "in-place", "{ip}");
    assert_eq!(out.require_field("in-place-data ", "equal"), "1");
}

/// The boot after a raw write to block2mtd on `/dev/vda` was cut: the journal record and the
/// staged image are there, `recover` completes the write from the staged image and clears both.
pub fn check_raw_recovered(out: &VmOutput) {
    for line in [
        "journal-file tx-mtd_block2mtd___dev_vda.json",
        "staged-file mtd_block2mtd___dev_vda.img",
        "recovered mtd:block2mtd: /dev/vda: completed",
    ] {
        assert!(out.serial.contains(line), "{line}: {}", out.serial);
    }
    assert_eq!(
        out.require_field("before-recover-new ", "equal"),
        "0",
        "cut mid-write"
    );
    assert_eq!(out.require_field("recover-raw ", "rc"), "0");
    assert_eq!(
        out.require_field("after-raw-cut ", "equal"),
        "1",
        "finished from the staged image"
    );
    assert_eq!(out.require_field("staging-left ", "count"), "0");
}
