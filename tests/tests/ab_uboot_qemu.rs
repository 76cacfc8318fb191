//! The U-Boot-environment A/B flow with real U-Boot: Debian's qemu_arm U-Boot runs
//! `bootloader-envs/uboot/ab-boot.txt` (compiled with mkimage -T script), Debian's
//! armmp kernel boots the slot it picks, and the static ARMv7 agent inside the guest
//! installs the other slot, confirms or reports. Every boot is a fresh power-on of the
//! same disk (see liminix_vm::arm).
//!
//! One run, seven boots, attempt budget 2:
//! 1. A installs a good B.  2. U-Boot tries B; B passes its health check and runs
//!    `mark-good`.  3. B again (confirmed, no trial).  4. B installs an A that never
//!    confirms, from a signed bundle that carries it as an image patch against the image B
//!    runs (`liminix-pack bundle --delta-base`); a patch against what slot A held is refused
//!    first (`base_mismatch`, exit 10).  5., 6. U-Boot tries A twice: it panics, then powers
//!    off.  7. U-Boot falls back to B, whose agent reports the rollback in `status`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use liminix_tests::device::pack_binary;
use liminix_tests::lab::text;
use liminix_vm::arm::ssh::{BOARD, BOARD_TOML};
use liminix_vm::arm::{ArmBed, Variant};

const ATTEMPTS: u8 = 2;
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// The A/B variables in the FAT file (single-copy environment: CRC, then name=value\0…).
fn vars(bed: &ArmBed) -> Vec<(String, String)> {
    let raw = bed.boot_file("uboot.env").unwrap();
    let data = &raw[4..];
    let crc = u32::from_le_bytes(raw[..4].try_into().unwrap());
    let mut h = crc32(data);
    h ^= crc;
    assert_eq!(h, 0, "uboot.env CRC is valid");
    data.split(|&b| b == 0)
        .take_while(|e| !e.is_empty())
        .filter_map(|e| {
            let s = String::from_utf8_lossy(e);
            s.split_once('=')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect()
}

fn var(bed: &ArmBed, name: &str) -> String {
    vars(bed)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// zlib CRC-32 (what U-Boot's environment uses).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn boot(bed: &ArmBed, step: &str, expect: &[&str]) -> String {
    bed.set_step(step).unwrap();
    let con = bed.boot(BOOT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    // Shown by the test harness on failure (or with --nocapture).
    eprintln!("==== boot console ====\n{con}");
    for e in expect {
        assert!(con.contains(e), "console lacks {e:?}:\n{con}");
    }
    con
}

fn install_step(sha: &str) -> String {
    format!(
        "ab_apply qemu-arm-ab kernel=/boot/new.img:{sha} && echo AB-APPLIED\n\
         rm -f /boot/new.img\n\
         echo \"AB-STATUS $(liminix-agent --json status | tr -d '\\n ')\"\n"
    )
}

/// The build host's side of step 4: a signing key, the board file and patch bundles.
struct Packer {
    dir: tempfile::TempDir,
}

impl Packer {
    fn new() -> Packer {
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new(pack_binary())
            .args(["keygen", "--secret"])
            .arg(dir.path().join("build.sec"))
            .arg("--public")
            .arg(dir.path().join("build.pub"))
            .output()
            .unwrap();
        assert!(o.status.success(), "keygen: {}", text(&o));
        std::fs::write(dir.path().join("board.toml"), BOARD_TOML).unwrap();
        Packer { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `liminix-pack bundle` of `image` as a patch against `base`.
    fn patch(&self, image: &Path, base: &Path, name: &str) -> PathBuf {
        let out = self.path(name);
        let o = Command::new(pack_binary())
            .arg("bundle")
            .arg("--key")
            .arg(self.path("build.sec"))
            .args(["--board", BOARD, "--epoch", "2", "--board-file"])
            .arg(self.path("board.toml"))
            .arg("--image")
            .arg(format!("kernel={}", image.display()))
            .arg("--delta-base")
            .arg(format!("kernel={}", base.display()))
            .arg("--out")
            .arg(&out)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "liminix-pack bundle: {}", text(&o));
        out
    }
}

/// Step 4's guest side: the board files `apply` checks a bundle against (this bed's slots
/// have only ab.json), the patch against slot A's old image refused, the one against B's
/// applied.
const PATCH_STEP: &str = "mkdir -p /etc/liminix/trusted-keys\n\
cp /boot/board.toml /etc/liminix/board.toml\n\
cp /boot/build.pub /etc/liminix/trusted-keys/build.pub\n\
echo qemu-arm-ab > /etc/liminix/board\n\
liminix-agent apply /boot/wrong.bnd; echo \"AB-WRONG-BASE rc=$?\"\n\
liminix-agent apply /boot/patch.bnd && echo AB-APPLIED\n\
rm -f /boot/patch.bnd /boot/wrong.bnd\n";

const STATUS_STEP: &str = "echo \"AB-STATUS $(liminix-agent --json status | tr -d '\\n ')\"\n";

#[test]
fn uboot_ab_good_update_stays_and_unconfirmed_update_rolls_back() {
    let bed = ArmBed::new(ATTEMPTS).unwrap_or_else(|e| panic!("test bed: {e}"));

    // 1. A is running; it installs a good B.
    let b = bed.slot_image(Variant::Good, "b-2", ATTEMPTS).unwrap();
    bed.put_boot_file(&b.path, "new.img").unwrap();
    boot(
        &bed,
        &install_step(&b.sha256),
        &[
            "liminix-ab: booting slot a (committed a, trying none",
            "AB-GUEST version=a-1",
            "liminix.slot=a",
            "AB-APPLIED",
            "\"trial\":\"waiting-for-reboot\"",
        ],
    );
    assert_eq!(bed.slot_bytes(1).unwrap(), std::fs::read(&b.path).unwrap());
    assert_eq!(
        (var(&bed, "ab_try"), var(&bed, "ab_left")),
        ("b".into(), "2".into())
    );

    // 2. U-Boot tries B (one attempt used); B is healthy and confirms itself.
    boot(
        &bed,
        "liminix-agent mark-good && echo AB-MARKED\n",
        &[
            "liminix-ab: booting slot b (committed a, trying b, left 1",
            "AB-GUEST version=b-2",
            "AB-MARKED",
        ],
    );
    assert_eq!(var(&bed, "ab_boot"), "b");
    assert_eq!(var(&bed, "ab_try"), "none");

    // 3. B stays across resets, without a trial.
    boot(
        &bed,
        STATUS_STEP,
        &[
            "liminix-ab: booting slot b (committed b, trying none",
            "AB-GUEST version=b-2",
            "\"trial\":\"none\"",
        ],
    );

    // 4. B installs an A that never confirms, as a patch against the image B runs; a
    // patch against slot A's old image (the slot written, not the one running) is refused.
    let bad = bed.slot_image(Variant::Bad, "a-bad", ATTEMPTS).unwrap();
    let packer = Packer::new();
    let old_a = packer.path("a-1.img");
    std::fs::write(&old_a, bed.slot_bytes(0).unwrap()).unwrap();
    let patch = packer.patch(&bad.path, &b.path, "patch.bnd");
    let wrong = packer.patch(&bad.path, &old_a, "wrong.bnd");
    for (host, name) in [
        (&patch, "patch.bnd"),
        (&wrong, "wrong.bnd"),
        (&packer.path("board.toml"), "board.toml"),
        (&packer.path("build.pub"), "build.pub"),
    ] {
        bed.put_boot_file(host, name).unwrap();
    }
    let con = boot(
        &bed,
        PATCH_STEP,
        &[
            "AB-GUEST version=b-2",
            "AB-WRONG-BASE rc=10",
            "running slot b",
            "AB-APPLIED",
        ],
    );
    assert!(con.contains("does not hold"), "{con}");
    assert_eq!(
        bed.slot_bytes(0).unwrap(),
        std::fs::read(&bad.path).unwrap()
    );

    // 5., 6. U-Boot spends the attempt budget on A: it panics once, powers off once.
    let panic = "echo AB-PANIC; echo c > /proc/sysrq-trigger\n";
    let steps = [
        (1, panic, "Kernel panic"),
        (0, "echo AB-POWEROFF\n", "AB-POWEROFF"),
    ];
    for (left, step, sign) in steps {
        boot(
            &bed,
            step,
            &[
                &format!("liminix-ab: booting slot a (committed b, trying a, left {left}"),
                "AB-GUEST version=a-bad: never confirms",
                sign,
            ],
        );
    }

    // 7. Back on B: its agent reports the rollback and A stays marked failed.
    let con = boot(
        &bed,
        STATUS_STEP,
        &[
            "liminix-ab: booting slot b (committed b, trying none, left 0, failed a)",
            "AB-GUEST version=b-2",
            "\"trial\":\"rolled-back\"",
            "\"last_rollback\":{\"failed\":\"a\",\"running\":\"b\"",
        ],
    );
    assert!(!con.contains("AB-GUEST version=a-bad"));
    assert_eq!(var(&bed, "ab_failed"), "a");
    assert_eq!(var(&bed, "ab_boot"), "b");
}
