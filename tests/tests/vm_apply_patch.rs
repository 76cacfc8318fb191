//! Image patches (`liminix-pack bundle --delta-base`, encoding 4) applied by the static
//! `liminix-agent apply` in a QEMU guest (TCG) on real kernel drivers: a NOR firmware on mtdram
//! patched against what `flashcp` put there, a UBI volume on nandsim patched against the volume
//! the previous bundle wrote, and a patch made against other contents refused with exit 10
//! (`base_mismatch`) leaving the flash byte for byte as it was. One boot per guest, the same
//! scenarios on two: the musl x86_64 agent on the host's kernel, and the static mipsel agent
//! (scripts/build-agents.sh) on Debian's 4kc-malta kernel, the CPU of the MT76xx routers, where
//! the guest also prints the patch's decode time and the agent's peak resident memory.

use liminix_tests::data::pattern;
use liminix_tests::images::image_bundle;
use std::path::{Path, PathBuf};

use liminix_build_tools::images::ImageInput;
use liminix_bundle::SecretKey;
use liminix_testdata::tenth_changed;
use liminix_vm::{build_static, built_agent, StaticTarget, VmBuilder};

const NANDSIM: &str = "modprobe nandsim first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15 parts=16,128";

struct Host {
    dir: tempfile::TempDir,
    key: SecretKey,
}

impl Host {
    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    /// A bundle of image `name` from file `file`, a patch against file `base` if given.
    fn bundle(
        &self,
        out: &str,
        board: &str,
        name: &str,
        file: &str,
        base: Option<&str>,
    ) -> PathBuf {
        let inputs = [ImageInput {
            name: name.into(),
            file: self.dir.path().join(file),
            base: base.map(|b| self.dir.path().join(b)),
        }];
        let path = self.dir.path().join(out);
        image_bundle(&self.key, board, &inputs, &path);
        path
    }
}

const SCRIPT: &str = r#"
exec 2>&1
rc() { tag=$1; shift; r=0; "$@" >/dev/null 2>&1 || r=$?; echo "$tag rc=$r"; }
mtd_named() { for d in /sys/class/mtd/mtd[0-9]*; do if [ "$(cat $d/name)" = "$1" ]; then basename $d; fi; done | grep -v ro | head -1; }
mkroot() {
  mkdir -p $1/etc/liminix/trusted-keys $1/persist $1/run
  ln -s /sys $1/sys; ln -s /dev $1/dev; ln -s /proc $1/proc
  echo $2 > $1/etc/liminix/board
  cp /img/$2.toml $1/etc/liminix/board.toml
  cp /img/build.pub $1/etc/liminix/trusted-keys/
}
# measured TAG CMD...: like json, and "TAG-cost seconds=S vmhwm_kb=K": the wall time from
# /proc/uptime and the largest VmHWM seen while polling CMD's /proc/PID/status (the peak of its
# resident memory, read at most 20 times a second: a lower bound).
measured() {
  tag=$1; shift; t0=$(cut -d' ' -f1 /proc/uptime)
  "$@" > /tmp/$tag.out & pid=$!
  hwm=0
  while kill -0 $pid 2>/dev/null; do
    h=$(awk '/^VmHWM:/ { print $2 }' /proc/$pid/status 2>/dev/null || true)
    [ -n "$h" ] && hwm=$h
    sleep 0.05
  done
  r=0; wait $pid || r=$?
  t1=$(cut -d' ' -f1 /proc/uptime)
  echo "$tag rc=$r $(tr -d '\n' < /tmp/$tag.out)"
  echo "$tag-cost seconds=$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}') vmhwm_kb=$hwm"
}
vol_id() { for v in /sys/class/ubi/ubi0_*; do if [ "$(cat $v/name)" = "$1" ]; then basename $v | sed 's/ubi0_//'; fi; done; }

modprobe mtdram total_size=4096 erase_size=64
mkroot /nor vm-nor
nor=/dev/$(mtd_named "mtdram test device")
liminix-agent --root /nor flashcp /img/fw0 $nor
rc nor-other-base liminix-agent --root /nor apply /img/nor-other.bundle
same 600000 $nor /img/fw0 nor-untouched
echo "nor-staging count=$(ls /nor/run/liminix/staging 2>/dev/null | wc -l)"
measured nor-patch liminix-agent --root /nor --json apply /img/nor-patch.bundle
same 600000 $nor /img/fw1 nor-patched

$NANDSIM
mkroot /nand vm-nand-ubi
ubinum=$(mtd_named "NAND simulator partition 1" | sed 's/mtd//')
modprobe ubi mtd=$ubinum
json ubi-whole liminix-agent --root /nand --json apply /img/ubi-whole.bundle
measured ubi-patch liminix-agent --root /nand --json apply /img/ubi-patch.bundle
rid=$(vol_id rootfs)
same 900000 /dev/ubi0_$rid /img/r2 ubi-patched
"#;

#[test]
fn image_patches_on_real_nor_and_ubi() {
    let agent = build_static("liminix-agent", StaticTarget::Bin("liminix-agent")).unwrap();
    let vm = VmBuilder::new().memory_mb(768).timeout(400);
    image_patches(vm, &agent, "x86_64");
}

#[test]
fn image_patches_on_real_nor_and_ubi_decoded_by_the_mipsel_agent() {
    let agent = built_agent("mipsel-unknown-linux-gnu").unwrap_or_else(|e| panic!("{e}"));
    let vm = VmBuilder::mipsel().timeout(1200);
    image_patches(vm, &agent, "mipsel");
}

/// The scenarios of this file on guest `vm` with `agent`.
fn image_patches(vm: VmBuilder, agent: &Path, label: &str) {
    let host = Host {
        dir: tempfile::tempdir().unwrap(),
        key: SecretKey::generate(),
    };
    let fw0 = pattern(1, 600_000);
    let r1 = pattern(3, 900_000);
    let files = [
        ("fw1", tenth_changed(&fw0, 7)),
        ("fw-other", tenth_changed(&fw0, 9)),
        ("r2", tenth_changed(&r1, 11)),
        ("fw0", fw0),
        ("r1", r1),
    ];
    let mut vm = vm
        .file(agent, "/bin/liminix-agent")
        .module("mtdram")
        .module("nandsim")
        .module("ubi");
    for (name, data) in &files {
        vm = vm.file(host.write(name, data), &format!("/img/{name}"));
    }
    for board in ["vm-nor", "vm-nand-ubi"] {
        let (_, text) = liminix_boards::TEST_BOARDS
            .iter()
            .find(|(n, _)| *n == board)
            .unwrap();
        let file = format!("{board}.toml");
        vm = vm.file(host.write(&file, text.as_bytes()), &format!("/img/{file}"));
    }
    let public = host.write("build.pub", host.key.public().to_file_text().as_bytes());
    let patch = host.bundle("nor-patch.bundle", "vm-nor", "firmware", "fw1", Some("fw0"));
    // Made against contents the device does not hold.
    let other = host.bundle(
        "nor-other.bundle",
        "vm-nor",
        "firmware",
        "fw1",
        Some("fw-other"),
    );
    let ubi_whole = host.bundle("ubi-whole.bundle", "vm-nand-ubi", "rootfs", "r1", None);
    let ubi_patch = host.bundle(
        "ubi-patch.bundle",
        "vm-nand-ubi",
        "rootfs",
        "r2",
        Some("r1"),
    );
    let whole = std::fs::metadata(host.bundle("w.bundle", "vm-nor", "firmware", "fw1", None))
        .unwrap()
        .len();
    let patched = std::fs::metadata(&patch).unwrap().len();
    assert!(
        patched * 3 < whole,
        "patch bundle {patched} bytes, whole {whole}"
    );
    for (p, name) in [
        (&public, "build.pub"),
        (&patch, "nor-patch.bundle"),
        (&other, "nor-other.bundle"),
        (&ubi_whole, "ubi-whole.bundle"),
        (&ubi_patch, "ubi-patch.bundle"),
    ] {
        vm = vm.file(p, &format!("/img/{name}"));
    }
    let out = vm
        .script(&SCRIPT.replace("$NANDSIM", NANDSIM))
        .run()
        .unwrap();
    eprintln!(
        "vm_apply_patch ({label}): guest ran {:.1} s",
        out.elapsed.as_secs_f64()
    );
    for tag in ["nor-patch-cost", "ubi-patch-cost"] {
        let hwm = out.require_field(tag, "vmhwm_kb");
        eprintln!(
            "vm_apply_patch ({label}): {tag}: {} s, VmHWM {hwm} kB",
            out.require_field(tag, "seconds"),
        );
        assert!(
            hwm.parse::<u64>().is_ok_and(|k| k > 0),
            "{tag}: no VmHWM seen\n{}",
            out.serial
        );
    }
    out.assert_success();
    assert_eq!(out.require_field("nor-other-base", "rc"), "10");
    assert_eq!(out.require_field("nor-untouched", "equal"), "1");
    assert_eq!(out.require_field("nor-staging", "count"), "0");
    assert_eq!(
        out.json("nor-patch")["images"][0]["target"],
        "mtd:mtdram test device"
    );
    assert_eq!(out.require_field("nor-patched", "equal"), "1");
    assert_eq!(out.json("ubi-patch")["images"][0]["method"], "ubi-swap");
    assert_eq!(out.require_field("ubi-patched", "equal"), "1");
}
