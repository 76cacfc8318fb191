//! liminix-mtd and liminix-ubi against real kernel drivers (nandsim, mtdram,
//! block2mtd, UBI) in QEMU, cross-checked with mtd-utils in the same guest.
//!
//! Each test is one boot (7–20 s under TCG); checks are grouped accordingly.
//! Probe programs: flash/mtd/examples/mtd-probe.rs, flash/ubi/examples/ubi-probe.rs.

use liminix_tests::data::pattern;
use std::path::PathBuf;
use std::sync::OnceLock;

use liminix_vm::{build_static, Disk, StaticTarget, VmBuilder, VmOutput};

/// nandsim as a 256 MiB NAND, 128 KiB erase blocks, 2 KiB pages.
const NANDSIM: &str = "modprobe nandsim first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15";

fn probes() -> &'static (PathBuf, PathBuf) {
    static P: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    P.get_or_init(|| {
        let mtd = build_static("liminix-mtd", StaticTarget::Example("mtd-probe")).unwrap();
        let ubi = build_static("liminix-ubi", StaticTarget::Example("ubi-probe")).unwrap();
        (mtd, ubi)
    })
}

fn guest() -> VmBuilder {
    let (mtd, ubi) = probes();
    VmBuilder::new()
        .file(mtd, "/bin/mtd-probe")
        .file(ubi, "/bin/ubi-probe")
        .timeout(300)
}

/// The probes' deterministic data generator, re-implemented for host-side checks.
/// Value after "label:" in mtd-utils' human-readable output, first number only.
fn tool_number(out: &VmOutput, label: &str) -> u64 {
    let line = out
        .serial
        .lines()
        .find(|l| l.trim_start().starts_with(label));
    let line = line.unwrap_or_else(|| panic!("no `{label}` in serial:\n{}", out.serial));
    let rest = &line[line.find(':').expect("colon") + 1..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("bad number in {line:?}"))
}

/// Prints the boot time; with LIMINIX_VM_SERIAL set, the whole console too.
fn report(name: &str, out: &VmOutput) {
    eprintln!("{name}: guest ran {:.1} s", out.elapsed.as_secs_f64());
    if std::env::var_os("LIMINIX_VM_SERIAL").is_some() {
        eprintln!("{}", out.serial);
    }
}

const NAND_SCRIPT: &str = r#"
modprobe ubi
$NANDSIM badblocks=10,20
name=$(cat /sys/class/mtd/mtd0/name)
mtd-probe info "mtd:$name"
mtdinfo /dev/mtd0
mtd-probe refusals /dev/mtd0
mtd-probe rw mtd0 3 11 /tmp/blk3
nanddump -q -s 0x60000 -l 0x20000 -f /tmp/dump3 /dev/mtd0
cmp /tmp/blk3 /tmp/dump3 && echo "xcheck-nanddump equal=1"
mtd-probe gen 12 131072 /tmp/p12
flash_erase -q /dev/mtd0 0x80000 1
nandwrite -q -s 0x80000 /dev/mtd0 /tmp/p12
mtd-probe compare /dev/mtd0 0x80000 /tmp/p12
mtd-probe bad mtd0 0 3 9 10 11 20 21 30
mtd-probe badat mtd0 0x141000
mtd-probe markbad mtd0 30
mtd-probe ecc mtd0
echo "sysfs-bad bad_blocks=$(cat /sys/class/mtd/mtd0/bad_blocks)"
# UBI refuses an MTD holding non-UBI data: wipe it (bad blocks are skipped).
flash_erase -q /dev/mtd0 0 0

ubi-probe attach 0
ubi-probe info 0
ubinfo -d 0
ubi-probe mkvol 0 alpha 4000000 dynamic
ubi-probe mkvol 0 beta 4000000 dynamic 5
ubi-probe mkvol 0 kern 1000000 static
ubi-probe mkvol 0 gamma 200000 dynamic 7
ubi-probe update 0 0 21 1000000 300000
ubi-probe update 0 1 23 500000 0 | sed 's/^update/update-static/'
ubi-probe gen 22 777777 /tmp/b.img
ubiupdatevol /dev/ubi0_5 /tmp/b.img
ubi-probe compare ubi0:beta /tmp/b.img
ubi-probe vols 0 | sed 's/^vol/before/'
ubi-probe rename 0 0:beta 5:alpha
ubi-probe vols 0 | sed 's/^vol/swapped/'
ubi-probe compare ubi0:alpha /tmp/b.img | sed 's/^compare/compare-swapped/'
ubinfo -d 0 -n 5 | sed 's/^/ubinfo5 /'
ubi-probe rename 0 0:gamma
ubi-probe vols 0 | sed 's/^vol/replaced/'
ubi-probe partial 0 5 200000 100000
ubi-probe vols 0 | sed 's/^vol/partial/'
ubi-probe resize 0 0 8000000
ubi-probe rmvol 0 1
ubi-probe vols 0 | sed 's/^vol/final/'
ubi-probe info 0 | sed 's/^info/info-final/'
ubi-probe detach 0
[ ! -e /sys/class/ubi/ubi0 ] && echo "detached gone=1"

rmmod nandsim
# Page 384 (block 6) returns garbage after 3 reads.
$NANDSIM bitflips=1 gravepages=384:3
mtd-probe eccstress mtd0 5 3000
mtd-probe eccfail mtd0 6 20

modprobe mtdram total_size=4096 erase_size=64
mtd-probe info "mtd:mtdram test device" | sed 's/^info/nor-info/'
mtd-probe refusals "mtd:mtdram test device" | sed 's/^refusals/nor-refusals/'
mtd-probe rw mtd1 2 31 | sed 's/^rw/nor-rw/'
mtd-probe bad mtd1 0 1 2 | sed 's/^bad/nor-bad/'
mtd-probe gen 33 200000 /tmp/f33
flashcp /tmp/f33 /dev/mtd1
mtd-probe compare mtd1 0 /tmp/f33 | sed 's/^compare/nor-compare/'
flash_erase -q /dev/mtd1 0 0
ubi-probe attach 1 | sed 's/^attach/nor-attach/'
ubi-probe info 0 | sed 's/^info/nor-ubi/'
"#;

#[test]
fn nand_nor_and_ubi_on_real_drivers() {
    let out = guest()
        .module("nandsim")
        .module("mtdram")
        .module("ubi")
        .host_tool("mtdinfo")
        .host_tool("nanddump")
        .host_tool("nandwrite")
        .host_tool("flash_erase")
        .host_tool("flashcp")
        .host_tool("ubinfo")
        .host_tool("ubiupdatevol")
        .script(&NAND_SCRIPT.replace("$NANDSIM", NANDSIM))
        .run()
        .unwrap();
    report("nand_nor_and_ubi", &out);
    out.assert_success();
    check_nand(&out);
    check_ubi(&out);
    check_nor(&out);
}

fn check_nand(out: &VmOutput) {
    assert_eq!(out.require_field("info ", "kind"), "Nand");
    assert_eq!(out.require_field("info ", "size"), "268435456");
    assert_eq!(out.require_field("info ", "erase_size"), "131072");
    assert_eq!(out.require_field("info ", "write_size"), "2048");
    assert_eq!(out.require_field("info ", "oob_size"), "64");
    assert_eq!(out.require_field("info ", "sys_kind"), "nand");
    // mtd-utils reads the same geometry.
    assert_eq!(tool_number(out, "Eraseblock size:"), 131072);
    assert_eq!(tool_number(out, "Minimum input/output unit size:"), 2048);
    assert_eq!(tool_number(out, "OOB size:"), 64);
    assert_eq!(out.require_field("refusals ", "checked"), "6");
    assert_eq!(out.require_field("rw ", "ok"), "1");
    assert_eq!(
        out.require_field("xcheck-nanddump ", "equal"),
        "1",
        "nanddump sees what we wrote"
    );
    assert_eq!(
        out.require_field("compare ", "equal"),
        "1",
        "we read what nandwrite wrote"
    );
    assert_eq!(out.require_field("bad ", "blocks"), "10,20");
    assert_eq!(
        out.require_field("badat ", "bad"),
        "true",
        "offset inside bad block 10"
    );
    assert_eq!(out.require_field("markbad ", "now_bad"), "true");
    assert_eq!(out.require_field("ecc ", "badblocks"), "3");
    assert_eq!(out.require_field("sysfs-bad ", "bad_blocks"), "3");
    let before: u32 = out
        .require_field("eccstress ", "corrected_before")
        .parse()
        .unwrap();
    let after: u32 = out
        .require_field("eccstress ", "corrected_after")
        .parse()
        .unwrap();
    assert!(
        after > before,
        "nandsim bitflips=1 must produce corrected bitflips"
    );
    assert_eq!(out.require_field("eccstress ", "failed"), "0");
    assert_eq!(
        out.require_field("eccfail ", "detected"),
        "1",
        "uncorrectable error reported"
    );
    let failed: u32 = out
        .require_field("eccfail ", "failed_after")
        .parse()
        .unwrap();
    assert!(failed > 0);
}

fn vol_line<'a>(out: &'a VmOutput, prefix: &str, name: &str) -> Option<&'a str> {
    let needle = format!(" name={name} ");
    out.lines_starting(prefix)
        .into_iter()
        .find(|l| l.contains(&needle))
}

fn vol_field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap()
}

fn check_ubi(out: &VmOutput) {
    assert_eq!(out.require_field("attach ", "ubi"), "0");
    // nandsim has 512-byte sub-pages (mtdinfo says so): VID header at 512,
    // data at 2048, LEB 129024 (docs/formats/ubi.md, "Geometry", sub-page 512 row).
    assert_eq!(tool_number(out, "Sub-page size:"), 512);
    assert_eq!(out.require_field("info ubi=0", "leb"), "129024");
    assert_eq!(out.require_field("info ubi=0", "min_io"), "2048");
    let total: u64 = out.require_field("info ubi=0", "total").parse().unwrap();
    let avail: u64 = out.require_field("info ubi=0", "avail").parse().unwrap();
    assert_eq!(
        total,
        tool_number(out, "Total amount of logical eraseblocks:")
    );
    assert_eq!(
        avail,
        tool_number(out, "Amount of available logical eraseblocks:")
    );
    // 2048 PEBs minus the three bad ones.
    assert_eq!(total, 2045);
    assert_eq!(out.require_field("info ubi=0", "bad"), "3");
    assert_eq!(out.require_field("mkvol name=alpha", "id"), "0");
    assert_eq!(out.require_field("mkvol name=beta", "id"), "5");
    assert_eq!(out.require_field("mkvol name=kern", "id"), "1");
    let upd = "update id=0";
    assert_eq!(
        (
            out.require_field(upd, "equal"),
            out.require_field(upd, "rest_ff")
        ),
        ("1", "1")
    );
    // 4000000 bytes → 32 LEBs of 129024: a dynamic volume reads its whole reservation.
    assert_eq!(out.require_field(upd, "read"), (32 * 129024).to_string());
    assert_eq!(
        out.require_field("update-static", "read"),
        "500000",
        "static volume reads its data only"
    );
    assert_eq!(out.require_field("update-static", "equal"), "1");
    assert_eq!(
        out.require_field("compare ", "equal"),
        "1",
        "we read what ubiupdatevol wrote"
    );
    let kern = vol_line(out, "before ", "kern").expect("kern listed");
    assert_eq!(
        (vol_field(kern, "kind"), vol_field(kern, "data_bytes")),
        ("Static", "500000")
    );
    // RNVOL swap: names trade ids, contents follow the ids.
    assert_eq!(
        vol_field(vol_line(out, "swapped ", "alpha").unwrap(), "id"),
        "5"
    );
    assert_eq!(
        vol_field(vol_line(out, "swapped ", "beta").unwrap(), "id"),
        "0"
    );
    assert_eq!(out.require_field("compare-swapped", "equal"), "1");
    assert!(
        out.serial.contains("ubinfo5 ") && out.serial.contains("Name:        alpha"),
        "ubinfo agrees on the swap"
    );
    // RNVOL onto an existing name not itself renamed deletes that volume.
    assert!(vol_line(out, "replaced ", "beta").is_none());
    assert_eq!(
        vol_field(vol_line(out, "replaced ", "gamma").unwrap(), "id"),
        "0"
    );
    assert_eq!(out.lines_starting("replaced ").len(), 3);
    assert_eq!(out.require_field("partial ", "overwrite_refused"), "1");
    assert_eq!(out.require_field("partial ", "finish_refused"), "1");
    assert_eq!(
        vol_field(vol_line(out, "partial ", "alpha").unwrap(), "upd_marker"),
        "1"
    );
    assert_eq!(
        vol_field(vol_line(out, "final ", "gamma").unwrap(), "reserved"),
        "63"
    );
    assert!(
        vol_line(out, "final ", "kern").is_none(),
        "rmvol removed it"
    );
    assert_eq!(out.require_field("info-final", "vols"), "2");
    assert_eq!(out.require_field("detached ", "gone"), "1");
}

fn check_nor(out: &VmOutput) {
    assert_eq!(out.require_field("nor-info", "kind"), "Ram");
    assert_eq!(out.require_field("nor-info", "size"), (4 << 20).to_string());
    assert_eq!(out.require_field("nor-info", "erase_size"), "65536");
    assert_eq!(out.require_field("nor-info", "write_size"), "1");
    assert_eq!(out.require_field("nor-refusals", "checked"), "4");
    assert_eq!(out.require_field("nor-rw", "ok"), "1");
    assert_eq!(out.require_field("nor-bad", "blocks"), "");
    assert_eq!(
        out.require_field("nor-compare", "equal"),
        "1",
        "we read what flashcp wrote"
    );
    // min I/O 1: VID header at 64, data at 128, LEB 65408 (docs/formats/ubi.md, "Geometry").
    assert_eq!(out.require_field("nor-ubi", "leb"), "65408");
    assert_eq!(out.require_field("nor-ubi", "total"), "64");
}

const CUT_SCRIPT: &str = r#"
modprobe ubi
modprobe block2mtd block2mtd=/dev/vda,128KiB
echo /dev/vdb,128KiB > /sys/module/block2mtd/parameters/block2mtd
mtd-probe info "mtd:block2mtd: /dev/vda"
mtd-probe rw "mtd:block2mtd: /dev/vda" 5 41
flash_erase -q /dev/mtd1 0 0
ubi-probe attach 1
ubi-probe mkvol 0 good 1000000 dynamic 0
ubi-probe mkvol 0 victim 2000000 dynamic 1
ubi-probe update 0 0 51 600000 0
ubi-probe hang 0 1 1500000 700000
"#;

const AFTER_CUT_SCRIPT: &str = r#"
ubi-probe attach 0
ubi-probe vols 0
ubi-probe gen 51 600000 /tmp/good
ubi-probe compare ubi0:good /tmp/good
ubi-probe update 0 1 52 1500000 0
ubi-probe vols 0 | sed 's/^vol/redone/'
"#;

/// block2mtd turns a virtio disk into flash that outlives the guest: data the
/// guest programmed is in the host file afterwards, and a UBI volume update cut
/// by killing QEMU is seen as interrupted (upd_marker) on the next boot while
/// the other volume survives intact.
#[test]
fn block2mtd_keeps_data_across_power_cut() {
    let raw = Disk::new("b2m-raw", 16 << 20);
    let ubi = Disk::new("b2m-ubi", 32 << 20);
    let out = guest()
        .module("block2mtd")
        .module("ubi")
        .host_tool("flash_erase")
        .disk(raw.path())
        .disk(ubi.path())
        .script(CUT_SCRIPT)
        .run_until("hang written=")
        .unwrap();
    report("block2mtd_power_cut_first_boot", &out);
    assert!(
        out.killed_at_marker && out.status.is_none(),
        "serial:\n{}",
        out.serial
    );
    assert_eq!(out.require_field("info ", "erase_size"), "131072");
    assert_eq!(
        out.require_field("info ", "size"),
        (16u64 << 20).to_string()
    );
    assert_eq!(out.require_field("rw ", "ok"), "1");
    let disk = std::fs::read(raw.path()).unwrap();
    let block = 5 * 131072;
    assert!(
        disk[block..block + 131072] == pattern(41, 131072)[..],
        "guest's write is in the disk file"
    );
    assert!(
        disk[..block].iter().all(|&b| b == 0),
        "nothing else touched"
    );

    let out = guest()
        .modprobe("ubi", "")
        .modprobe("block2mtd", "block2mtd=/dev/vda,128KiB")
        .disk(ubi.path()) // now the only disk: /dev/vda
        .script(AFTER_CUT_SCRIPT)
        .run()
        .unwrap();
    report("block2mtd_power_cut_second_boot", &out);
    out.assert_success();
    let victim = vol_line(&out, "vol ", "victim").expect("victim listed");
    assert_eq!(
        vol_field(victim, "upd_marker"),
        "1",
        "interrupted update is visible"
    );
    let good = vol_line(&out, "vol ", "good").expect("good listed");
    assert_eq!(vol_field(good, "upd_marker"), "0");
    assert_eq!(
        out.require_field("compare ", "equal"),
        "1",
        "finished volume survived the cut"
    );
    assert_eq!(out.require_field("update id=1", "equal"), "1");
    assert_eq!(
        vol_field(vol_line(&out, "redone ", "victim").unwrap(), "upd_marker"),
        "0"
    );
}

/// The harness itself: a failing command stops the script (`sh -e`, pipefail)
/// and its status reaches the host.
#[test]
fn harness_reports_guest_failure() {
    let out = VmBuilder::new()
        .timeout(120)
        .script("echo before-failure\ntrue | false | cat\necho after-failure\n")
        .run()
        .unwrap();
    report("harness_failure_boot", &out);
    assert_eq!(out.status, Some(1), "serial:\n{}", out.serial);
    assert!(out.serial.contains("before-failure") && !out.serial.contains("after-failure"));
    assert!(!out.killed_at_marker && !out.timed_out);
}
