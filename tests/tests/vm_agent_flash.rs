//! The static liminix-agent's flash commands on real kernel drivers in QEMU
//! (TCG): `flashcp` (as a subcommand and under the name `flashcp`) on nandsim
//! with bad blocks and bitflips and on mtdram (NOR), `ubi-update` swap and
//! in-place (refused while mounted, refused without room), cross-checked with
//! mtd-utils; and a chain of real power cuts (QEMU killed mid-write) on
//! block2mtd disks, each recovered by the agent at the next boot, after which
//! the partition or volume the bootloader would read must be whole.
//!
//! Four boots: devices + first cut, then one boot per recovery + next cut.
//!
//! Done means durable: six more boots on block2mtd where the power is cut right after
//! `ubi-update` (swap, then in place), `flashcp` and `recover` (rolling back a swap cut
//! mid-write) exited 0, with the journal on another flash device (so its own syncs do not
//! sync the target) and the kernel's periodic write-back off; each next boot must find
//! what the command reported.

mod flash_checks;

use flash_checks::{changed, KB128};
use liminix_tests::data::pattern;
use std::path::PathBuf;
use std::sync::OnceLock;

use liminix_vm::{build_static, Disk, StaticTarget, VmBuilder, VmOutput};

const NANDSIM: &str = "modprobe nandsim first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15";

fn agent() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| build_static("liminix-agent", StaticTarget::Bin("liminix-agent")).unwrap())
}

/// Host files shipped into every guest under /img.
struct Images {
    dir: tempfile::TempDir,
}

impl Images {
    fn get() -> &'static Images {
        static I: OnceLock<Images> = OnceLock::new();
        I.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let k1 = pattern(20, 3 * 1024 * 1024);
            let mut files = flash_checks::images();
            files.extend([
                ("r3", pattern(7, 1_300_000)),
                ("k1", k1.clone()),
                ("k2", changed(&k1, KB128, &(0..24).collect::<Vec<_>>())),
                ("u1", pattern(21, 3_000_000)),
                ("u2", pattern(22, 2_900_000)),
            ]);
            for (name, data) in files {
                std::fs::write(dir.path().join(name), data).unwrap();
            }
            Images { dir }
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

const IMAGES: [&str; 14] = [
    "a", "b", "toobig", "r1", "r2", "r3", "d", "n1", "n2", "s", "k1", "k2", "u1", "u2",
];

fn guest() -> VmBuilder {
    let imgs = Images::get();
    let mut vm = VmBuilder::new()
        .file(agent(), "/bin/liminix-agent")
        .module("ubi")
        .module("zstd")
        .module("ubifs")
        .host_tool("flash_erase")
        .host_tool("ubiattach")
        .host_tool("ubidetach")
        .host_tool("ubimkvol")
        .host_tool("ubiupdatevol")
        .host_tool("ubinfo")
        .host_tool("nanddump")
        .host_tool("flashcp")
        .memory_mb(768)
        .timeout(500);
    for name in IMAGES {
        vm = vm.file(imgs.path(name), &format!("/img/{name}"));
    }
    vm
}

/// Module loads and the `rc` helper every script starts with (`same` and `json` come
/// from the harness).
const PRELUDE: &str = r#"
modprobe ubi
modprobe zstd
modprobe ubifs
mkdir -p /usr/local/bin
ln -s /bin/liminix-agent /usr/local/bin/flashcp
# rc TAG CMD...: "TAG rc=N"
rc() { tag=$1; shift; r=0; "$@" || r=$?; echo "$tag rc=$r"; }
"#;

fn report(name: &str, out: &VmOutput) {
    eprintln!("{name}: guest ran {:.1} s", out.elapsed.as_secs_f64());
    if std::env::var_os("LIMINIX_VM_SERIAL").is_some() {
        eprintln!("{}", out.serial);
    }
}

/// nandsim: mtd0 = 16 blocks with bad blocks 2 and 5, mtd1 = 16 blocks, mtd2 = the rest (UBI).
const NAND_RAW: &str = r#"
$NANDSIM parts=16,16 badblocks=2,5
json raw-a liminix-agent --json flashcp --journal /tmp/j /img/a /dev/mtd0
/usr/local/bin/flashcp -v /img/b "mtd:NAND simulator partition 0" --journal /tmp/j 2>&1 | sed 's/^/raw-b-log /'
json raw-b2 liminix-agent --json flashcp --journal /tmp/j /img/b /dev/mtd0
nanddump -q --bb=skipbad -s 0 -l 1835008 -f /tmp/dump /dev/mtd0
same 1500000 /tmp/dump /img/b xcheck-nanddump
rc too-big liminix-agent flashcp --journal /tmp/jnew /img/toobig /dev/mtd0
if [ -e /tmp/jnew ]; then n=1; else n=0; fi; echo "refused-journal-left count=$n"
nanddump -q --bb=skipbad -s 0 -l 1835008 -f /tmp/dump /dev/mtd0
same 1500000 /tmp/dump /img/b untouched-nand
rc usage /usr/local/bin/flashcp -x /img/b /dev/mtd0
ls /tmp/j/staging | wc -l | sed 's/^/staging-left count=/'
ls /tmp/j | grep -c '^tx-' | sed 's/^/records-left count=/' || true
"#;

const UBI: &str = r#"
ubiattach -m 2 -d 0 >/dev/null
ubimkvol /dev/ubi0 -N rootfs -s 2MiB >/dev/null
ubiupdatevol /dev/ubi0_0 /img/r1
json swap liminix-agent --json ubi-update --journal /tmp/j ubi0:rootfs /img/r2
same 1400000 /dev/ubi0_1 /img/r2 swap-new
same 1500000 /dev/ubi0_0 /img/r1 swap-old
ubinfo -d 0 -N rootfs.old | grep -E '^Volume ID' | sed 's/^/ubinfo-old /'
json swap-devnode liminix-agent --json ubi-update --journal /tmp/j /dev/ubi0_1 /img/r3
id=$(ubinfo -d 0 -N rootfs | sed -n 's/^Volume ID: *\([0-9]*\).*/\1/p')
same 1300000 /dev/ubi0_$id /img/r3 swap-devnode-new
ubimkvol /dev/ubi0 -N cfg -s 2MiB >/dev/null
mkdir -p /cfg
mount -t ubifs ubi0:cfg /cfg
json swap-mounted liminix-agent --json ubi-update --journal /tmp/j ubi0:cfg /img/s
grep -c ' /cfg ' /proc/mounts | sed 's/^/still-mounted count=/'
umount /cfg
id=$(ubinfo -d 0 -N cfg | sed -n 's/^Volume ID: *\([0-9]*\).*/\1/p')
same 100000 /dev/ubi0_$id /img/s swap-mounted-new
ubimkvol /dev/ubi0 -N data -s 4MiB >/dev/null
mkdir -p /mnt
mount -t ubifs ubi0:data /mnt
ubimkvol /dev/ubi0 -N filler -m >/dev/null
rc no-room liminix-agent ubi-update --journal /tmp/j ubi0:data /img/d
rc mounted liminix-agent ubi-update --journal /tmp/j --in-place ubi0:data /img/d
umount /mnt
json in-place liminix-agent --json ubi-update --journal /tmp/j --in-place ubi0:data /img/d
did=$(ubinfo -d 0 -N data | sed -n 's/^Volume ID: *\([0-9]*\).*/\1/p')
same 1000000 /dev/ubi0_$did /img/d in-place-data
ubidetach -d 0
"#;

const NOR: &str = r#"
modprobe mtdram total_size=4096 erase_size=64
json nor-n1 liminix-agent --json flashcp --journal /tmp/j /img/n1 /dev/mtd3
json nor-n2 liminix-agent --json flashcp --journal /tmp/j /img/n2 "mtd:mtdram test device"
same 1000000 /dev/mtd3 /img/n2 xcheck-nor
/usr/sbin/flashcp /img/n1 /dev/mtd3
json nor-after-flashcp liminix-agent --json flashcp --journal /tmp/j /img/n1 /dev/mtd3
json nor-erase-all liminix-agent --json flashcp --journal /tmp/j -A /img/s /dev/mtd3
same 100000 /dev/mtd3 /img/s xcheck-nor-small
echo "nor-tail nonblank=$(tail -c +131073 /dev/mtd3 | tr -d '\377' | wc -c)"
"#;

/// block2mtd: mtd(vda) is a raw partition, mtd(vdb) holds UBI (as ubi3) with
/// a persistent UBIFS (/persist, the agent's default journal) and rootfs.
const B2M_SETUP: &str = r#"
modprobe block2mtd block2mtd=/dev/vda,128KiB block2mtd=/dev/vdb,128KiB
RAW=$(grep -l 'block2mtd: /dev/vda' /sys/class/mtd/mtd*/name | head -1 | sed 's,.*/\(mtd[0-9]*\)/name,\1,')
UBIMTD=$(grep -l 'block2mtd: /dev/vdb' /sys/class/mtd/mtd*/name | head -1 | sed 's,.*/mtd\([0-9]*\)/name,\1,')
echo 1 > /proc/sys/vm/dirty_expire_centisecs
echo 1 > /proc/sys/vm/dirty_writeback_centisecs
"#;

const CUT_RAW: &str = r#"
flash_erase -q /dev/mtd$UBIMTD 0 0
ubiattach -m $UBIMTD -d 3 >/dev/null
ubimkvol /dev/ubi3 -N persist -s 8MiB >/dev/null
ubimkvol /dev/ubi3 -N rootfs -s 4MiB >/dev/null
mkdir -p /persist
mount -t ubifs ubi3:persist /persist
ubiupdatevol /dev/ubi3_1 /img/u1
liminix-agent flashcp /img/k1 /dev/$RAW
same 3145728 /dev/$RAW /img/k1 cut-raw-before
sync
(while :; do sync; sleep 0.05; done) &
liminix-agent flashcp -v /img/k2 /dev/$RAW 2>&1 | sed 's/^/cut /'
echo "raw write finished before the cut"
"#;

const RECOVER_RAW_CUT_SWAP: &str = r#"
ubiattach -m $UBIMTD -d 3 >/dev/null
mkdir -p /persist
mount -t ubifs ubi3:persist /persist
ls /persist/.liminix/journal | sed 's/^/journal-file /'
ls /persist/.liminix/journal/staging | sed 's/^/staged-file /'
same 3145728 /dev/$RAW /img/k2 before-recover-new
rc recover-raw liminix-agent recover
same 3145728 /dev/$RAW /img/k2 after-raw-cut
ls /persist/.liminix/journal/staging | wc -l | sed 's/^/staging-left count=/'
sync
(while :; do sync; sleep 0.05; done) &
liminix-agent ubi-update -v ubi3:rootfs /img/u2 2>&1 | sed 's/^/cut /'
echo "swap finished before the cut"
"#;

const RECOVER_SWAP_CUT_IN_PLACE: &str = r#"
ubiattach -m $UBIMTD -d 3 >/dev/null
mkdir -p /persist
mount -t ubifs ubi3:persist /persist
rc recover-swap liminix-agent recover
ubinfo -d 3 -a | grep -c rootfs.new | sed 's/^/staged-volumes count=/' || true
id=$(ubinfo -d 3 -N rootfs | sed -n 's/^Volume ID: *\([0-9]*\).*/\1/p')
same 3000000 /dev/ubi3_$id /img/u1 after-swap-cut
ubimkvol /dev/ubi3 -N filler -m >/dev/null
sync
(while :; do sync; sleep 0.05; done) &
liminix-agent ubi-update -v --in-place ubi3:rootfs /img/u2 2>&1 | sed 's/^/cut /'
echo "in-place finished before the cut"
"#;

const RECOVER_IN_PLACE_BITFLIPS: &str = r#"
ubiattach -m $UBIMTD -d 3 >/dev/null
mkdir -p /persist
mount -t ubifs ubi3:persist /persist
id=$(ubinfo -d 3 -N rootfs | sed -n 's/^Volume ID: *\([0-9]*\).*/\1/p')
echo "upd-marker value=$(cat /sys/class/ubi/ubi3/ubi3_$id/upd_marker)"
liminix-agent recover | sed 's/^/recover-in-place-out /'
same 2900000 /dev/ubi3_$id /img/u2 after-in-place-cut
ls /persist/.liminix/journal | grep -c '^tx-' | sed 's/^/records-left count=/' || true
rc recover-again liminix-agent recover

$NANDSIM parts=16 bitflips=1
json flips-a liminix-agent --json flashcp --journal /tmp/j /img/a "mtd:NAND simulator partition 0"
json flips-b liminix-agent --json flashcp --journal /tmp/j /img/b "mtd:NAND simulator partition 0"
NAND=$(grep -l 'NAND simulator partition 0' /sys/class/mtd/mtd*/name | head -1 | sed 's,.*/\(mtd[0-9]*\)/name,\1,')
nanddump -q -s 0 -l 1572864 -f /tmp/dump /dev/$NAND
same 1500000 /tmp/dump /img/b flips-read-back
"#;

fn devices_script() -> String {
    format!("{PRELUDE}{NAND_RAW}{UBI}{NOR}{B2M_SETUP}{CUT_RAW}").replace("$NANDSIM", NANDSIM)
}

fn cut_boot(vda: &Disk, vdb: &Disk, script: &str) -> VmBuilder {
    guest()
        .module("block2mtd")
        .module("nandsim")
        .module("mtdram")
        .disk(vda.path())
        .disk(vdb.path())
        .script(&format!("{PRELUDE}{B2M_SETUP}{script}").replace("$NANDSIM", NANDSIM))
}

fn check_ubi(out: &VmOutput) {
    flash_checks::check_ubi_swap(out);
    assert!(
        out.serial.contains("ubinfo-old Volume ID:   0"),
        "{}",
        out.serial
    );
    assert_eq!(out.json_rc("swap-devnode").1["target"], "ubi0:rootfs");
    assert_eq!(out.require_field("swap-devnode-new ", "equal"), "1");
    let m = out.json_rc("swap-mounted").1;
    assert_eq!(
        m["strategy"], "swap",
        "a mounted volume can be swapped: {m}"
    );
    assert_eq!(m["old_kept_as"], "cfg.old");
    assert_eq!(out.require_field("still-mounted ", "count"), "1");
    assert_eq!(out.require_field("swap-mounted-new ", "equal"), "1");
    flash_checks::check_ubi_in_place(out);
}

fn check_nor(out: &VmOutput) {
    flash_checks::check_nor(out, "xcheck-nor", "xcheck-nor-small");
    let f = out.json_rc("nor-after-flashcp").1;
    assert_eq!(
        f["rewritten_blocks"], 0,
        "mtd-utils flashcp's image is recognised: {f}"
    );
}

#[test]
fn agent_flash_commands_and_power_cuts() {
    let (vda, vdb) = (
        Disk::new("agent-raw", 8 << 20),
        Disk::new("agent-ubi", 32 << 20),
    );
    let marker = "cut writing: 10%";
    let out = guest()
        .module("nandsim")
        .module("mtdram")
        .module("block2mtd")
        .disk(vda.path())
        .disk(vdb.path())
        .script(&devices_script())
        .run_until(marker)
        .unwrap();
    report("devices_and_raw_cut", &out);
    assert!(out.killed_at_marker, "serial:\n{}", out.serial);
    flash_checks::check_raw_nand(&out, "xcheck-nanddump");
    check_ubi(&out);
    check_nor(&out);
    assert_eq!(out.require_field("cut-raw-before ", "equal"), "1");

    let out = cut_boot(&vda, &vdb, RECOVER_RAW_CUT_SWAP)
        .run_until(marker)
        .unwrap();
    report("recover_raw_cut_swap", &out);
    assert!(out.killed_at_marker, "serial:\n{}", out.serial);
    flash_checks::check_raw_recovered(&out);

    let out = cut_boot(&vda, &vdb, RECOVER_SWAP_CUT_IN_PLACE)
        .run_until(marker)
        .unwrap();
    report("recover_swap_cut_in_place", &out);
    assert!(out.killed_at_marker, "serial:\n{}", out.serial);
    assert!(
        out.serial.contains("recovered ubi3:rootfs: rolled-back"),
        "{}",
        out.serial
    );
    assert_eq!(out.require_field("staged-volumes ", "count"), "0");
    assert_eq!(
        out.require_field("after-swap-cut ", "equal"),
        "1",
        "old volume whole"
    );

    let out = cut_boot(&vda, &vdb, RECOVER_IN_PLACE_BITFLIPS)
        .run()
        .unwrap();
    report("recover_in_place_and_bitflips", &out);
    out.assert_success();
    assert_eq!(
        out.require_field("upd-marker ", "value"),
        "1",
        "the cut left the volume torn"
    );
    assert!(
        out.serial
            .contains("recover-in-place-out recovered ubi3:rootfs: completed"),
        "{}",
        out.serial
    );
    assert_eq!(out.require_field("after-in-place-cut ", "equal"), "1");
    assert_eq!(out.require_field("records-left ", "count"), "0");
    assert_eq!(out.require_field("recover-again ", "rc"), "0");
    assert_eq!(out.require_field("flips-a ", "rc"), "0");
    assert_eq!(out.require_field("flips-b ", "rc"), "0");
    assert_eq!(out.require_field("flips-read-back ", "equal"), "1");
    eprintln!(
        "bitflips corrected: {} then {}",
        out.json_rc("flips-a").1["corrected_bitflips"],
        out.json_rc("flips-b").1["corrected_bitflips"]
    );
}

/// block2mtd on vda (raw), vdb (UBI: rootfs) and vdc (UBI: persist, the journal's
/// UBIFS), attached as ubi3 and ubi4.
const DURABLE_SETUP: &str = r#"
modprobe block2mtd block2mtd=/dev/vda,128KiB block2mtd=/dev/vdb,128KiB block2mtd=/dev/vdc,128KiB
mtd_of() { grep -l "block2mtd: /dev/$1" /sys/class/mtd/mtd*/name | head -1 | sed 's,.*/mtd\([0-9]*\)/name,\1,'; }
RAW=mtd$(mtd_of vda); UBIMTD=$(mtd_of vdb); PMTD=$(mtd_of vdc)
vol_id() { ubinfo -d 3 -N "$1" | sed -n 's/^Volume ID: *\([0-9]*\).*/\1/p'; }
"#;

const DURABLE_ATTACH: &str = r#"
ubiattach -m $UBIMTD -d 3 >/dev/null
ubiattach -m $PMTD -d 4 >/dev/null
mkdir -p /persist
mount -t ubifs ubi4:persist /persist
"#;

const DURABLE_FIRST: &str = r#"
flash_erase -q /dev/mtd$UBIMTD 0 0
flash_erase -q /dev/mtd$PMTD 0 0
ubiattach -m $UBIMTD -d 3 >/dev/null
ubiattach -m $PMTD -d 4 >/dev/null
ubimkvol /dev/ubi3 -N rootfs -s 4MiB >/dev/null
ubimkvol /dev/ubi4 -N persist -s 8MiB >/dev/null
mkdir -p /persist
mount -t ubifs ubi4:persist /persist
ubiupdatevol /dev/ubi3_0 /img/u1
liminix-agent flashcp /img/k1 /dev/$RAW
sync
cut_after swap liminix-agent ubi-update ubi3:rootfs /img/u2
"#;

const DURABLE_AFTER_SWAP: &str = r#"
same 2900000 /dev/ubi3_$(vol_id rootfs) /img/u2 swap-durable
same 3000000 /dev/ubi3_$(vol_id rootfs.old) /img/u1 swap-old-kept
ls /persist/.liminix/journal | grep -c '^tx-' | sed 's/^/swap-records count=/' || true
cut_after raw liminix-agent flashcp /img/k2 /dev/$RAW
"#;

const DURABLE_AFTER_RAW: &str = r#"
same 3145728 /dev/$RAW /img/k2 raw-durable
ubirmvol /dev/ubi3 -N rootfs.old
ubimkvol /dev/ubi3 -N filler -m >/dev/null
sync
cut_after in-place liminix-agent ubi-update --in-place ubi3:rootfs /img/u1
"#;

const DURABLE_AFTER_IN_PLACE: &str = r#"
echo "in-place-marker value=$(cat /sys/class/ubi/ubi3/ubi3_$(vol_id rootfs)/upd_marker)"
same 3000000 /dev/ubi3_$(vol_id rootfs) /img/u1 in-place-durable
ls /persist/.liminix/journal | grep -c '^tx-' | sed 's/^/in-place-records count=/' || true
ubirmvol /dev/ubi3 -N filler
sync
(while :; do sync; sleep 0.05; done) &
liminix-agent ubi-update -v ubi3:rootfs /img/u2 2>&1 | sed 's/^/cut /'
echo "swap finished before the cut"
"#;

const DURABLE_ROLL_BACK: &str = r#"
ubinfo -d 3 -a | grep -c rootfs.new | sed 's/^/staged-before count=/' || true
cut_after recover liminix-agent recover
"#;

const DURABLE_AFTER_ROLL_BACK: &str = r#"
ubinfo -d 3 -a | grep -c rootfs.new | sed 's/^/staged-after count=/' || true
same 3000000 /dev/ubi3_$(vol_id rootfs) /img/u1 rolled-back-old
ls /persist/.liminix/journal | grep -c '^tx-' | sed 's/^/rolled-back-records count=/' || true
"#;

fn durable_boot(disks: &[&Disk; 3], script: &str) -> VmBuilder {
    let vm = guest().module("block2mtd").host_tool("ubirmvol");
    disks
        .iter()
        .fold(vm, |vm, d| vm.disk(d.path()))
        .script(&format!("{PRELUDE}{DURABLE_SETUP}{script}"))
}

/// The power goes right after the command of `cut_after TAG …` exited: it must have
/// exited 0 before the cut.
fn cut_right_after(disks: &[&Disk; 3], tag: &str, script: &str) -> VmOutput {
    let out = durable_boot(disks, script)
        .cut_after_command()
        .run()
        .unwrap();
    report(tag, &out);
    assert!(out.killed_at_marker, "serial:\n{}", out.serial);
    assert_eq!(out.require_field(&format!("{tag} "), "rc"), "0");
    out
}

#[test]
fn a_cut_right_after_the_agent_exits_keeps_the_new_image() {
    let (vda, vdb, vdc) = (
        Disk::new("durable-raw", 8 << 20),
        Disk::new("durable-ubi", 32 << 20),
        Disk::new("durable-persist", 16 << 20),
    );
    let disks = [&vda, &vdb, &vdc];
    cut_right_after(&disks, "swap", DURABLE_FIRST);

    let script = format!("{DURABLE_ATTACH}{DURABLE_AFTER_SWAP}");
    let out = cut_right_after(&disks, "raw", &script);
    let new = out.require_field("swap-durable ", "equal");
    assert_eq!(new, "1", "ubi-update swap exited 0, then the power went");
    assert_eq!(out.require_field("swap-old-kept ", "equal"), "1");
    assert_eq!(out.require_field("swap-records ", "count"), "0");

    let script = format!("{DURABLE_ATTACH}{DURABLE_AFTER_RAW}");
    let out = cut_right_after(&disks, "in-place", &script);
    let new = out.require_field("raw-durable ", "equal");
    assert_eq!(new, "1", "flashcp exited 0, then the power went");

    let script = format!("{DURABLE_ATTACH}{DURABLE_AFTER_IN_PLACE}");
    let out = durable_boot(&disks, &script)
        .run_until("cut writing: 10%")
        .unwrap();
    report("after_in_place", &out);
    assert!(out.killed_at_marker, "serial:\n{}", out.serial);
    assert_eq!(out.require_field("in-place-marker ", "value"), "0");
    let new = out.require_field("in-place-durable ", "equal");
    assert_eq!(
        new, "1",
        "ubi-update --in-place exited 0, then the power went"
    );
    assert_eq!(out.require_field("in-place-records ", "count"), "0");

    // `recover` rolls the swap cut mid-write back by removing rootfs.new; the power
    // goes right after it exited.
    let script = format!("{DURABLE_ATTACH}{DURABLE_ROLL_BACK}");
    let out = cut_right_after(&disks, "recover", &script);
    assert_eq!(out.require_field("staged-before ", "count"), "1");
    assert!(
        out.serial.contains("recovered ubi3:rootfs: rolled-back"),
        "{}",
        out.serial
    );

    let script = format!("{DURABLE_ATTACH}{DURABLE_AFTER_ROLL_BACK}");
    let out = durable_boot(&disks, &script).run().unwrap();
    report("after_roll_back", &out);
    out.assert_success();
    let staged = out.require_field("staged-after ", "count");
    assert_eq!(staged, "0", "recover exited 0, then the power went");
    assert_eq!(out.require_field("rolled-back-old ", "equal"), "1");
    assert_eq!(out.require_field("rolled-back-records ", "count"), "0");
}
