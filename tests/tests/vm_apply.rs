//! `liminix-agent apply` (static musl build) in a QEMU guest (TCG) on real kernel drivers: image
//! bundles made by the packer on the host are applied to an mtdram NOR partition (board vm-nor)
//! and to UBI volumes on nandsim (board vm-nand-ubi), each board under its own `--root` whose
//! /sys, /dev and /proc are the guest's. Flash contents are compared with the images in the
//! guest; refusals (flipped byte, wrong board, lower epoch) must leave the flash as it was.
//! The agent is the shipped build, which does not know the `vm-*` boards: each root carries
//! its board definition as `/etc/liminix/board.toml`.
//!
//! The same scenario runs twice: on the host's x86_64 kernel with the musl agent, and on
//! Debian's 4kc-malta kernel (`qemu-system-mipsel -M malta`) with the mipsel agent of
//! `scripts/build-agents.sh`, so the ioctl numbers and struct layouts of a little-endian MIPS
//! router are exercised too. The MIPS guest has only busybox, so the script attaches UBI by the
//! module parameter and finds volumes in sysfs on both guests.
//!
//! One boot.

use liminix_tests::data::pattern;
use std::path::{Path, PathBuf};

use liminix_build_tools::images::ImageInput;
use liminix_build_tools::liminix_boards;
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::SecretKey;
use liminix_vm::{build_static, built_agent, StaticTarget, VmBuilder, VmOutput};

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

    fn bundle(&self, out: &str, board: &str, epoch: u64, images: &[(&str, &str)]) -> PathBuf {
        let def = liminix_boards::builtin(board).unwrap();
        let inputs: Vec<ImageInput> = images
            .iter()
            .map(|(name, file)| ImageInput {
                name: (*name).into(),
                file: self.dir.path().join(file),
                base: None,
            })
            .collect();
        let opts = PackOptions {
            store_root: Path::new("/nonexistent"),
            toplevel: None,
            board,
            epoch,
            build_time: 1,
            level: 9,
            images: &inputs,
            board_def: Some(&def),
            raw_images: false,
        };
        let path = self.dir.path().join(out);
        write_bundle(&opts, &self.key, &path, &|_, _| {}).unwrap();
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
# The volume id of UBI volume $1 on ubi0, from sysfs (the MIPS guest has no mtd-utils).
vol_id() { for v in /sys/class/ubi/ubi0_*; do if [ "$(cat $v/name)" = "$1" ]; then basename $v | sed 's/ubi0_//'; fi; done; }

# --- raw NOR: mtdram 4 MiB, 64 KiB blocks ---
modprobe mtdram total_size=4096 erase_size=64
mkroot /nor vm-nor
nor=/dev/$(mtd_named "mtdram test device")
liminix-agent --root /nor flashcp /img/fw0 $nor
json nor-1 liminix-agent --root /nor --json apply /img/nor1.bundle
same 600000 $nor /img/fw1 nor-1-flash
json nor-again liminix-agent --root /nor --json apply /img/nor1.bundle
rc nor-flipped liminix-agent --root /nor apply /img/nor1-flipped.bundle
rc nor-wrong-board liminix-agent --root /nor apply /img/ubi1.bundle
rc nor-low-epoch liminix-agent --root /nor apply /img/nor-old.bundle
same 600000 $nor /img/fw1 nor-untouched
echo "nor-epoch value=$(cat /nor/persist/.liminix/image-epoch)"
echo "nor-staging count=$(ls /nor/run/liminix/staging | wc -l)"

# --- UBI on nandsim partition 1 ---
$NANDSIM
mkroot /nand vm-nand-ubi
ubinum=$(mtd_named "NAND simulator partition 1" | sed 's/mtd//')
modprobe ubi mtd=$ubinum
json ubi-1 liminix-agent --root /nand --json apply /img/ubi1.bundle
kid=$(vol_id kernel)
rid=$(vol_id rootfs)
same 200000 /dev/ubi0_$kid /img/k1 ubi-1-kernel
same 900000 /dev/ubi0_$rid /img/r1 ubi-1-rootfs
[ "$(cat /sys/class/ubi/ubi0_$kid/type)" = static ] && echo "ubi-kernel static=1"
json ubi-2 liminix-agent --root /nand --json apply /img/ubi2.bundle
rid=$(vol_id rootfs)
oid=$(vol_id rootfs.old)
same 850000 /dev/ubi0_$rid /img/r2 ubi-2-rootfs
same 900000 /dev/ubi0_$oid /img/r1 ubi-2-old
"#;

fn report(out: &VmOutput) {
    eprintln!("vm_apply: guest ran {:.1} s", out.elapsed.as_secs_f64());
    if std::env::var_os("LIMINIX_VM_SERIAL").is_some() {
        eprintln!("{}", out.serial);
    }
}

#[test]
fn apply_image_bundles_on_real_nor_and_ubi() {
    let agent = build_static("liminix-agent", StaticTarget::Bin("liminix-agent")).unwrap();
    let guest = VmBuilder::new().memory_mb(768).timeout(400);
    apply_on(guest, &agent);
}

#[test]
fn mipsel_apply_image_bundles_on_real_nor_and_ubi() {
    let agent = built_agent("mipsel-unknown-linux-gnu").unwrap_or_else(|e| panic!("{e}"));
    apply_on(VmBuilder::mipsel().timeout(900), &agent);
}

/// Packs the bundles on the host, applies them in `guest` with `agent`, checks the flash.
fn apply_on(guest: VmBuilder, agent: &Path) {
    let host = Host {
        dir: tempfile::tempdir().unwrap(),
        key: SecretKey::generate(),
    };
    let fw0 = pattern(1, 600_000);
    let mut fw1 = fw0.clone();
    for at in [70_000, 400_000] {
        fw1[at] ^= 0x5A;
    }
    let files = [
        ("fw0", fw0),
        ("fw1", fw1),
        ("k1", pattern(2, 200_000)),
        ("r1", pattern(3, 900_000)),
        ("r2", pattern(4, 850_000)),
    ];
    let mut vm = guest
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
    let nor1 = host.bundle("nor1.bundle", "vm-nor", 2, &[("firmware", "fw1")]);
    let old = host.bundle("nor-old.bundle", "vm-nor", 1, &[("firmware", "fw0")]);
    let ubi1 = host.bundle(
        "ubi1.bundle",
        "vm-nand-ubi",
        0,
        &[("kernel", "k1"), ("rootfs", "r1")],
    );
    let ubi2 = host.bundle("ubi2.bundle", "vm-nand-ubi", 0, &[("rootfs", "r2")]);
    let mut flipped = std::fs::read(&nor1).unwrap();
    let at = flipped.len() - 100;
    flipped[at] ^= 1;
    let flipped = host.write("nor1-flipped.bundle", &flipped);
    for (p, name) in [
        (&public, "build.pub"),
        (&nor1, "nor1.bundle"),
        (&old, "nor-old.bundle"),
        (&ubi1, "ubi1.bundle"),
        (&ubi2, "ubi2.bundle"),
        (&flipped, "nor1-flipped.bundle"),
    ] {
        vm = vm.file(p, &format!("/img/{name}"));
    }
    let out = vm
        .script(&SCRIPT.replace("$NANDSIM", NANDSIM))
        .run()
        .unwrap();
    report(&out);
    out.assert_success();

    let nor = out.json("nor-1");
    let img = &nor["images"][0];
    assert_eq!(img["target"], "mtd:mtdram test device", "{nor}");
    assert_eq!(img["rewritten_blocks"], 2, "{nor}");
    assert_eq!(img["unchanged_blocks"], 8, "{nor}");
    assert_eq!(out.require_field("nor-1-flash", "equal"), "1");
    assert_eq!(out.json("nor-again")["images"][0]["rewritten_blocks"], 0);
    assert_eq!(out.require_field("nor-flipped", "rc"), "3");
    assert_eq!(out.require_field("nor-wrong-board", "rc"), "4");
    assert_eq!(out.require_field("nor-low-epoch", "rc"), "4");
    assert_eq!(out.require_field("nor-untouched", "equal"), "1");
    assert_eq!(out.require_field("nor-epoch", "value"), "2");
    assert_eq!(out.require_field("nor-staging", "count"), "0");

    let u1 = out.json("ubi-1");
    let methods: Vec<_> = u1["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["target"].as_str().unwrap(), i["method"].as_str().unwrap()))
        .collect();
    assert_eq!(
        methods,
        [("ubi0:kernel", "ubi-swap"), ("ubi0:rootfs", "ubi-swap")]
    );
    assert_eq!(out.require_field("ubi-1-kernel", "equal"), "1");
    assert_eq!(out.require_field("ubi-1-rootfs", "equal"), "1");
    assert_eq!(out.require_field("ubi-kernel", "static"), "1");
    assert_eq!(out.json("ubi-2")["images"][0]["old_kept_as"], "rootfs.old");
    assert_eq!(out.require_field("ubi-2-rootfs", "equal"), "1");
    assert_eq!(out.require_field("ubi-2-old", "equal"), "1");
}
