//! A Zyxel trial that crashes, and the kernel's own pstore record of the crash in the
//! rollback that the old slot's agent reports.
//!
//! One QEMU x86_64 process, two boots of Debian's kernel (`allow_reboot`: the panic
//! resets the guest, RAM is kept). Real: the kernel, its ramoops/pstore (a 1 MiB
//! region reserved with `memmap=`, loaded as the `ramoops` module on both boots), the
//! MTD devices (slots on nandsim as in `ab_zyxel_nand_vm`; the bootconfig on block2mtd
//! over a virtio disk, so it outlives the reset, unlike nandsim), `/persist` on a FAT
//! virtio disk, and the static agent (`ab_apply` for `apply`, `liminix-agent status`).
//!
//! Played: the vendor U-Boot, by liminix-bootenv's `zyxel_vendor_boot` example, which runs liminix-bootenv's model of
//! its `atgo` (`vendor_boot_decision_block`: boot the first NEW image after rewriting it
//! to FAIL, else the active one) on the bootconfig block and erases and programs the
//! block when the model rewrites it. It runs at the start of each boot and its pick must
//! be the `bootImage=0` on the kernel command line; and once more inside boot 1 for the
//! reset into B, which boot 1 then plays: the same kernel announces itself as B in the
//! kernel log and crashes (`echo c > /proc/sysrq-trigger`) without `mark-good`. The
//! reset lands on slot A again, whose `status` must find the trial unconfirmed and
//! report the rollback with the `dmesg-ramoops-*` record holding B's last kernel log.

use std::path::PathBuf;
use std::process::Command;

use liminix_tests::ab_layout::zyxel_nandsim_ab_json;
use liminix_tests::data::pattern;
use liminix_vm::{build_static, static_agent_with_ab_apply, StaticTarget, VmBuilder, VmOutput};
use sha2::{Digest, Sha256};

const NANDSIM: &str =
    "first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15 parts=8,16,8,16";
/// Guest-physical RAM kept out of the kernel's hands for ramoops: low enough that the
/// initramfs QEMU loads at the top of the 512 MiB never overlaps it.
const RAMOOPS: &str = "mem_address=0x10000000 mem_size=0x100000 record_size=0x20000";
const MEMMAP: &str = "memmap=1M$0x10000000";
/// What boot 1, playing slot B, writes to the kernel log just before it crashes.
const B_LINE: &str = "liminix-test: slot B on trial, crashing before mark-good";

/// The agent, `ab_apply` and the vendor U-Boot stand-in (liminix-bootenv's
/// `zyxel_vendor_boot` example).
fn guest_programs() -> (PathBuf, PathBuf, PathBuf) {
    let (agent, apply) = static_agent_with_ab_apply().unwrap_or_else(|e| panic!("{e}"));
    let vendor = build_static(
        "liminix-bootenv",
        StaticTarget::Example("zyxel_vendor_boot"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (agent, apply, vendor)
}

/// Both boots run this; the boot count on /persist tells them apart.
fn script(ks: &str, rs: &str) -> String {
    format!(
        r#"
BC=/dev/$(grep -l 'block2mtd: /dev/vda' /sys/class/mtd/mtd*/name | head -1 | sed 's,.*/\(mtd[0-9]*\)/name,\1,')
mkdir -p /persist
mount -t vfat /dev/vdb /persist
mount -t pstore pstore /sys/fs/pstore
ln -s /bin/liminix-agent /bin/zyxel-bootconfig
boot=$(( $(cat /persist/boots 2>/dev/null || echo 0) + 1 ))
echo $boot > /persist/boots
sync
echo "boot $boot cmdline=$(grep -o 'bootImage=[0-9]' /proc/cmdline) pstore=$(ls /sys/fs/pstore | tr '\n' ' ')"
vendor-uboot $BC
case $boot in
1)
  ab_apply zyxel-nwa50ax kernel=/k.img:{ks} rootfs=/r.img:{rs}
  echo "installed bc=$(od -An -tx1 -N2 $BC | tr -d ' \n')"
  sync
  echo "reset into B"
  vendor-uboot $BC
  echo "trial bc=$(od -An -tx1 -N2 $BC | tr -d ' \n')"
  echo "{B_LINE}" > /dev/kmsg
  echo c > /proc/sysrq-trigger
  sleep 5
  exit 10;;
2)
  echo "bc=$(od -An -tx1 -N2 $BC | tr -d ' \n')"
  echo STATUS-JSON-BEGIN
  liminix-agent --json status
  echo STATUS-JSON-END
  echo "after bc=$(od -An -tx1 -N2 $BC | tr -d ' \n') records=$(ls /persist/ab | tr '\n' ' ')pstore=$(ls /sys/fs/pstore | tr '\n' ' ')";;
*)
  exit 11;;
esac
"#
    )
}

/// The JSON `status` printed between the markers.
fn status_json(out: &VmOutput) -> serde_json::Value {
    let s = &out.serial;
    let body = s
        .split_once("STATUS-JSON-BEGIN\n")
        .and_then(|(_, rest)| rest.split_once("STATUS-JSON-END"))
        .unwrap_or_else(|| panic!("no status output; serial:\n{s}"))
        .0;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("status JSON: {e}\n{body}"))
}

#[test]
fn crashed_zyxel_trial_is_reported_with_the_kernels_pstore_record() {
    let (agent, apply, vendor) = guest_programs();
    let dir = tempfile::tempdir().unwrap();
    let kernel = pattern(1, 300 * 1024 + 5);
    let rootfs = pattern(2, 600 * 1024 + 7);
    std::fs::write(dir.path().join("k.img"), &kernel).unwrap();
    std::fs::write(dir.path().join("r.img"), &rootfs).unwrap();
    std::fs::write(
        dir.path().join("ab.json"),
        zyxel_nandsim_ab_json("block2mtd: /dev/vda"),
    )
    .unwrap();
    // The bootconfig partition as shipped: image 0 VALID and active, the rest erased.
    let mut bc = vec![0xFFu8; 256 * 1024];
    bc[..2].copy_from_slice(&[0x08, 0x00]);
    let bc_disk = dir.path().join("bootconfig.img");
    std::fs::write(&bc_disk, bc).unwrap();
    let persist = dir.path().join("persist.img");
    let st = Command::new("mkfs.vfat")
        .args(["-C", "-n", "PERSIST"])
        .arg(&persist)
        .arg("8192")
        .output()
        .expect("mkfs.vfat (dosfstools)");
    assert!(st.status.success(), "mkfs.vfat: {st:?}");
    let sha = |d: &[u8]| hex::encode(Sha256::digest(d));

    let out = VmBuilder::new()
        .modprobe("ramoops", RAMOOPS)
        .modprobe("nandsim", NANDSIM)
        .modprobe("block2mtd", "block2mtd=/dev/vda,128KiB")
        .modprobe("nls_cp437", "")
        .modprobe("nls_ascii", "")
        .modprobe("vfat", "")
        .disk(&bc_disk)
        .disk(&persist)
        .file(&agent, "/bin/liminix-agent")
        .file(&apply, "/bin/ab_apply")
        .file(&vendor, "/bin/vendor-uboot")
        .file(dir.path().join("k.img"), "/k.img")
        .file(dir.path().join("r.img"), "/r.img")
        .file(dir.path().join("ab.json"), "/etc/liminix/ab.json")
        .append(&format!("bootImage=0 {MEMMAP}"))
        .allow_reboot()
        .timeout(240)
        .script(&script(&sha(&kernel), &sha(&rootfs)))
        .run()
        .unwrap();
    println!("guest time for both boots: {:?}", out.elapsed);
    out.assert_success();
    let s = &out.serial;
    // boot 1: no record yet; U-Boot boots A; A installs B (NEW); the reset into B makes
    // it FAIL; B crashes.
    assert!(s.contains("boot 1 cmdline=bootImage=0 pstore=\n"), "{s}");
    assert!(s.contains("installed bc=4800"), "{s}");
    assert!(
        s.contains("reset into B\nvendor-uboot image=1 bootconfig=rewritten"),
        "{s}"
    );
    assert!(s.contains("trial bc=c800"), "{s}");
    assert!(
        s.contains("Kernel panic - not syncing: sysrq triggered crash"),
        "{s}"
    );
    // boot 2: ramoops kept the crash; U-Boot boots the active image A without a write.
    assert!(
        s.contains("boot 2 cmdline=bootImage=0 pstore=dmesg-ramoops-0"),
        "{s}"
    );
    assert_eq!(
        s.matches("vendor-uboot image=0 bootconfig=untouched")
            .count(),
        2,
        "{s}"
    );
    let status = status_json(&out);
    let ab = &status["ab"];
    assert_eq!(ab["booted"], "a", "{ab:#}");
    assert_eq!(ab["trial"], "rolled-back", "{ab:#}");
    assert_eq!(ab["state"]["failed"], serde_json::json!([false, true]));
    let rb = &ab["last_rollback"];
    assert_eq!((&rb["failed"], &rb["running"]), (&"b".into(), &"a".into()));
    let records = rb["pstore"].as_array().expect("pstore records");
    let crash = records
        .iter()
        .find(|r| {
            r["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("dmesg-ramoops-"))
        })
        .unwrap_or_else(|| panic!("no dmesg-ramoops record in {rb:#}"));
    let text = crash["text"].as_str().unwrap();
    assert!(text.contains(B_LINE), "{text}");
    assert!(
        text.contains("Kernel panic - not syncing: sysrq triggered crash"),
        "{text}"
    );
    // The rollback is on /persist, the pending record gone, and B (already FAIL) was
    // not written again.
    // The pstore record now lives in rollback.json; ramoops' slot is free again.
    assert!(
        s.contains("after bc=c800 records=rollback.json pstore=\n"),
        "{s}"
    );
}
