//! liminix-flash on real kernel drivers in QEMU (TCG): the raw writer on
//! nandsim (with bad blocks) and mtdram (NOR), the UBI swap update, rollback,
//! gc and the mount check on real UBI/UBIFS, cross-checked with mtd-utils; and
//! real power cuts (QEMU killed) during a UBI swap and an in-place update on
//! block2mtd flash, recovered from a file journal on UBIFS at the next boot.

use std::path::PathBuf;
use std::sync::OnceLock;

use liminix_vm::{build_static, Disk, StaticTarget, VmBuilder, VmOutput};

const NANDSIM: &str = "modprobe nandsim first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15";

fn probe() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| build_static("liminix-flash", StaticTarget::Example("flash-probe")).unwrap())
}

fn guest() -> VmBuilder {
    VmBuilder::new()
        .file(probe(), "/bin/flash-probe")
        .module("ubi")
        .module("zstd")
        .module("ubifs")
        .host_tool("flash_erase")
        .host_tool("ubiattach")
        .host_tool("ubimkvol")
        .host_tool("ubiupdatevol")
        .host_tool("ubinfo")
        .timeout(400)
}

fn report(name: &str, out: &VmOutput) {
    eprintln!("{name}: guest ran {:.1} s", out.elapsed.as_secs_f64());
    if std::env::var_os("LIMINIX_VM_SERIAL").is_some() {
        eprintln!("{}", out.serial);
    }
}

const DEVICES_SCRIPT: &str = r#"
modprobe ubi
modprobe zstd
modprobe ubifs
$NANDSIM badblocks=3,5
flash-probe gen 1 1000000 /tmp/old.img
flash-probe change /tmp/old.img /tmp/new.img 131072 1 6
flash-probe raw /dev/mtd0 /tmp/old.img /tmp/j | sed 's/^raw/raw-first/'
flash-probe raw /dev/mtd0 /tmp/new.img /tmp/j | sed 's/^raw/raw-second/'
flash-probe raw /dev/mtd0 /tmp/new.img /tmp/j | sed 's/^raw/raw-third/'
nanddump -q --bb=skipbad -s 0 -l 1310720 -f /tmp/dump /dev/mtd0
same 1000000 /tmp/dump /tmp/new.img xcheck-nanddump

flash_erase -q /dev/mtd0 0 0
ubiattach -m 0 >/dev/null
ubimkvol /dev/ubi0 -N rootfs -s 2MiB >/dev/null
flash-probe gen 2 1500000 /tmp/r1.img
flash-probe gen 3 1400000 /tmp/r2.img
ubiupdatevol /dev/ubi0_0 /tmp/r1.img
flash-probe ubi 0 rootfs /tmp/r2.img /tmp/j
ubinfo -d 0 -N rootfs | grep -E '^Volume ID' | sed 's/^/ubinfo-rootfs /'
ubinfo -d 0 -N rootfs.old | grep -E '^Volume ID' | sed 's/^/ubinfo-old /'
same 1400000 /dev/ubi0_1 /tmp/r2.img xcheck-new
flash-probe check 0 rootfs.old /tmp/r1.img | sed 's/^check/check-old/'
flash-probe rollback 0 rootfs
flash-probe check 0 rootfs /tmp/r1.img | sed 's/^check/check-rolledback/'
flash-probe gc 0 rootfs
ubinfo -d 0 | sed 's/^/ubinfo-dev /'
ubimkvol /dev/ubi0 -n 5 -N kernel -t static -s 1MiB >/dev/null
flash-probe gen 10 500000 /tmp/k1.img
flash-probe gen 11 400000 /tmp/k2.img
ubiupdatevol /dev/ubi0_5 /tmp/k1.img
flash-probe ubi 0 kernel /tmp/k2.img /tmp/j | sed 's/^ubi/ubi-kernel/'
ubinfo -d 0 -N kernel | sed 's/^/ubinfo-kernel /'
flash-probe check 0 kernel /tmp/k2.img | sed 's/^check/check-kernel/'
ubimkvol /dev/ubi0 -N persist -s 4MiB >/dev/null
mkdir -p /persist
mount -t ubifs ubi0:persist /persist
flash-probe mounted 0 persist | sed 's/^mounted/mounted-persist/'
flash-probe mounted 0 rootfs | sed 's/^mounted/mounted-rootfs/'

modprobe mtdram total_size=4096 erase_size=64
flash-probe gen 4 1000000 /tmp/n1.img
flash-probe change /tmp/n1.img /tmp/n2.img 65536 0 14
flashcp /tmp/n1.img /dev/mtd1
flash-probe raw /dev/mtd1 /tmp/n1.img /tmp/j | sed 's/^raw/nor-same/'
flash-probe raw /dev/mtd1 /tmp/n2.img /tmp/j | sed 's/^raw/nor-changed/'
same 1000000 /dev/mtd1 /tmp/n2.img xcheck-nor
flash-probe gen 8 4194305 /tmp/big.img
flash-probe raw /dev/mtd1 /tmp/big.img /tmp/j | sed 's/^error/too-big/' || true
same 1000000 /dev/mtd1 /tmp/n2.img xcheck-untouched
"#;

#[test]
fn raw_and_ubi_strategies_on_real_drivers() {
    let out = guest()
        .module("nandsim")
        .module("mtdram")
        .host_tool("nanddump")
        .host_tool("flashcp")
        .script(&DEVICES_SCRIPT.replace("$NANDSIM", NANDSIM))
        .run()
        .unwrap();
    report("raw_and_ubi_strategies", &out);
    out.assert_success();
    // nandsim, 128 KiB blocks, bad blocks 3 and 5: 8 image blocks over 10.
    assert_eq!(out.require_field("raw-first ", "blocks"), "8");
    assert_eq!(out.require_field("raw-first ", "skipped_bad"), "2");
    assert_eq!(
        out.require_field("raw-second ", "rewritten"),
        "2",
        "only the changed blocks"
    );
    assert_eq!(out.require_field("raw-second ", "unchanged"), "6");
    assert_eq!(out.require_field("raw-third ", "rewritten"), "0");
    assert_eq!(
        out.require_field("xcheck-nanddump ", "equal"),
        "1",
        "nanddump skipbad sees the image"
    );
    assert!(
        out.serial.contains("too-big raw: image of"),
        "{}",
        out.serial
    );
    // UBI swap on a real UBI device.
    assert!(
        out.serial
            .contains("ubi strategy=UbiSwap id=1 old_kept=rootfs.old"),
        "{}",
        out.serial
    );
    assert!(
        out.serial.contains("ubinfo-rootfs Volume ID:   1"),
        "{}",
        out.serial
    );
    assert!(
        out.serial.contains("ubinfo-old Volume ID:   0"),
        "{}",
        out.serial
    );
    assert_eq!(out.require_field("xcheck-new ", "equal"), "1");
    assert_eq!(out.require_field("check-old ", "equal"), "1");
    assert_eq!(out.require_field("rollback ", "done"), "true");
    assert_eq!(out.require_field("check-rolledback ", "equal"), "1");
    assert_eq!(out.require_field("gc ", "done"), "true");
    let count = out.lines_starting("ubinfo-dev Volumes count:");
    assert_eq!(count.len(), 1, "{}", out.serial);
    assert!(
        count[0].ends_with(" 1"),
        "only rootfs is left after gc: {count:?}"
    );
    // A static (kernel-style) volume stays static with the exact data size.
    assert!(
        out.serial.contains("ubi-kernel strategy=UbiSwap"),
        "{}",
        out.serial
    );
    let kernel = out.lines_starting("ubinfo-kernel ").join("\n");
    assert!(kernel.contains("static"), "{kernel}");
    assert!(kernel.contains("400000 bytes"), "{kernel}");
    assert_eq!(out.require_field("check-kernel ", "equal"), "1");
    assert_eq!(out.require_field("mounted-persist ", "at"), "/persist");
    assert_eq!(out.require_field("mounted-rootfs ", "at"), "-");
    // NOR (mtdram): flashcp's image is recognised, then 2 blocks change.
    assert_eq!(out.require_field("nor-same ", "rewritten"), "0");
    assert_eq!(out.require_field("nor-changed ", "rewritten"), "2");
    assert_eq!(out.require_field("xcheck-nor ", "equal"), "1");
    assert!(
        out.serial
            .contains("too-big raw: image of 4194305 bytes does not fit"),
        "{}",
        out.serial
    );
    assert_eq!(
        out.require_field("xcheck-untouched ", "equal"),
        "1",
        "refused before any erase"
    );
}

const BOOT: &str = r#"
modprobe ubi
modprobe zstd
modprobe ubifs
modprobe block2mtd block2mtd=/dev/vda,128KiB
"#;

const CUT_SWAP: &str = r#"
flash_erase -q /dev/mtd0 0 0
ubiattach -m 0 >/dev/null
ubimkvol /dev/ubi0 -N persist -s 10MiB >/dev/null
ubimkvol /dev/ubi0 -N rootfs -s 4MiB >/dev/null
mkdir -p /persist
mount -t ubifs ubi0:persist /persist
flash-probe gen 5 1500000 /persist/old.img
flash-probe gen 6 1400000 /persist/new.img
ubiupdatevol /dev/ubi0_1 /persist/old.img
sync
flash-probe ubi 0 rootfs /persist/new.img /persist/journal hang=700000
"#;

const RECOVER_THEN_CUT_IN_PLACE: &str = r#"
ubiattach -m 0 >/dev/null
mkdir -p /persist
mount -t ubifs ubi0:persist /persist
ls /persist/journal | sed 's/^/journal-file /'
flash-probe recover /persist/journal
flash-probe check 0 rootfs /persist/old.img | sed 's/^check/after-swap-cut/'
flash-probe check 0 rootfs.new /persist/new.img | sed 's/^check/staged-left/'
flash-probe ubi 0 rootfs /persist/new.img /persist/journal inplace hang=700000
"#;

const RECOVER_IN_PLACE: &str = r#"
ubiattach -m 0 >/dev/null
mkdir -p /persist
mount -t ubifs ubi0:persist /persist
echo "sysfs-upd-marker value=$(cat /sys/class/ubi/ubi0/ubi0_1/upd_marker)"
flash-probe check 0 rootfs /persist/old.img | sed 's/^check/before-recover-old/'
flash-probe recover /persist/journal
flash-probe check 0 rootfs /persist/new.img | sed 's/^check/after-in-place-cut/'
flash-probe gen 7 1300000 /persist/v3.img
flash-probe ubi 0 rootfs /persist/v3.img /persist/journal
flash-probe check 0 rootfs /persist/v3.img | sed 's/^check/final-new/'
flash-probe check 0 rootfs.old /persist/new.img | sed 's/^check/final-old/'
ls /persist/journal | wc -l | sed 's/^/journal-left count=/'
"#;

fn boot(disk: &Disk, script: &str) -> VmBuilder {
    guest()
        .module("block2mtd")
        .disk(disk.path())
        .script(&format!("{BOOT}{script}"))
}

#[test]
fn real_power_cuts_are_recovered_from_the_journal() {
    let disk = Disk::new("flash-cut", 32 << 20);
    let out = boot(&disk, CUT_SWAP).run_until("hang written=").unwrap();
    report("cut_during_swap", &out);
    assert!(
        out.killed_at_marker && out.status.is_none(),
        "serial:\n{}",
        out.serial
    );

    let out = boot(&disk, RECOVER_THEN_CUT_IN_PLACE)
        .run_until("hang written=")
        .unwrap();
    report("recover_swap_then_cut_in_place", &out);
    assert!(out.killed_at_marker, "serial:\n{}", out.serial);
    assert!(
        out.serial.contains("journal-file tx-ubi0_rootfs.json"),
        "{}",
        out.serial
    );
    assert_eq!(out.require_field("recover ", "count"), "1");
    assert_eq!(out.require_field("recovered ", "outcome"), "RolledBack");
    assert_eq!(
        out.require_field("after-swap-cut ", "equal"),
        "1",
        "old image intact"
    );
    assert_eq!(
        out.require_field("staged-left ", "equal"),
        "0",
        "half-written volume removed"
    );

    let out = boot(&disk, RECOVER_IN_PLACE).run().unwrap();
    report("recover_in_place", &out);
    out.assert_success();
    assert_eq!(
        out.require_field("sysfs-upd-marker ", "value"),
        "1",
        "the kernel saw the cut update"
    );
    assert_eq!(
        out.require_field("before-recover-old ", "equal"),
        "0",
        "in place: old is gone"
    );
    assert_eq!(
        out.require_field("recovered ", "outcome"),
        "Completed",
        "redone from the staging file"
    );
    assert_eq!(out.require_field("after-in-place-cut ", "equal"), "1");
    assert_eq!(out.require_field("final-new ", "equal"), "1");
    assert_eq!(out.require_field("final-old ", "equal"), "1");
    assert_eq!(out.require_field("journal-left ", "count"), "0");
}
