//! The Zyxel A/B flow on real MTD: nandsim in a QEMU x86_64 guest stands in for the
//! NWA50AX's NAND (partitions kernel, ubi, kernel_1, ubi_1, bootconfig, in erase
//! blocks of 128 KiB). The agent's `apply` (through the `ab_apply` example), running
//! from image 0 (`bootImage=0` on the command line), writes slot B's kernel and UBI
//! partitions with the raw writer and marks image 1 NEW in the bootconfig; the
//! bootconfig is read back with the agent's own `zyxel-bootconfig` and raw bytes.
//! A bundle for another board and an oversized image are refused with nothing written.

use std::path::PathBuf;
use std::process::Command;

use liminix_tests::vm::VmBuilder;
use sha2::{Digest, Sha256};

const NANDSIM: &str = "modprobe nandsim first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15 parts=8,16,8,16,1";

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

/// Static x86_64 builds of the agent and the `ab_apply` example. glibc with crt-static
/// rather than musl: examples link the agent's dev-dependencies, which include C code
/// (zstd) that a musl target would need a musl C compiler for.
fn static_agent() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("vm-gnu-static");
    let target = "x86_64-unknown-linux-gnu";
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args(["build", "--release", "--quiet", "--target", target])
        .args([
            "-p",
            "liminix-agent",
            "--bin",
            "liminix-agent",
            "--example",
            "ab_apply",
        ])
        .arg("--target-dir")
        .arg(&dir)
        .status()
        .expect("run cargo");
    assert!(st.success(), "static build of the agent failed");
    let rel = dir.join(target).join("release");
    (rel.join("liminix-agent"), rel.join("examples/ab_apply"))
}

fn part(i: u32) -> String {
    format!(r#"{{"kind":"mtd","name":"NAND simulator partition {i}"}}"#)
}

fn board_json() -> String {
    let slot = |k: u32, u: u32| {
        format!(
            r#"{{"kernel":{},"kernel_max":1048576,"rootfs":{},"rootfs_max":2097152}}"#,
            part(k),
            part(u)
        )
    };
    format!(
        r#"{{"board":"zyxel-nwa50ax","slots":[{},{}],"flow":{{"kind":"zyxel","device":"mtd:NAND simulator partition 4"}}}}"#,
        slot(0, 1),
        slot(2, 3)
    )
}

#[test]
fn zyxel_apply_on_nandsim_writes_slot_b_and_marks_it_new() {
    let (agent, apply) = static_agent();
    let dir = tempfile::tempdir().unwrap();
    let kernel = pattern(1, 700 * 1024 + 123);
    let rootfs = pattern(2, 1500 * 1024 + 7);
    let files = [
        ("k.img", kernel.clone()),
        ("r.img", rootfs.clone()),
        ("big.img", pattern(3, 1024 * 1024 + 1)),
        ("ab.json", board_json().into_bytes()),
    ];
    for (n, d) in &files {
        std::fs::write(dir.path().join(n), d).unwrap();
    }
    let sha = |d: &[u8]| hex::encode(Sha256::digest(d));
    let (ks, rs) = (sha(&kernel), sha(&rootfs));
    let big = sha(&files[2].1);
    let script = format!(
        r#"
{NANDSIM}
ln -s /bin/liminix-agent /bin/zyxel-bootconfig
zyxel-bootconfig /dev/mtd4 set-image-status 0 valid
zyxel-bootconfig /dev/mtd4 set-active-image 0
before=$(cat /dev/mtd2 /dev/mtd3 /dev/mtd4 | sha256sum | cut -c1-64)
if ab_apply other-board kernel=/k.img:{ks} rootfs=/r.img:{rs}; then exit 10; fi
if ab_apply zyxel-nwa50ax kernel=/big.img:{big} rootfs=/r.img:{rs}; then exit 11; fi
after=$(cat /dev/mtd2 /dev/mtd3 /dev/mtd4 | sha256sum | cut -c1-64)
echo "refusals unchanged=$([ "$before" = "$after" ] && echo yes || echo no)"
ab_apply zyxel-nwa50ax kernel=/k.img:{ks} rootfs=/r.img:{rs}
echo "bc=$(od -An -tx1 -N2 /dev/mtd4 | tr -d ' \n')"
zyxel-bootconfig /dev/mtd4 get-status
echo "slotb kernel=$(head -c {kl} /dev/mtd2 | sha256sum | cut -c1-64) rootfs=$(head -c {rl} /dev/mtd3 | sha256sum | cut -c1-64)"
echo "slota untouched=$(head -c {kl} /dev/mtd0 | tr -d '\377' | wc -c)"
echo "status $(liminix-agent --json status | tr -d '\n ')"
"#,
        kl = kernel.len(),
        rl = rootfs.len(),
    );
    let out = VmBuilder::new()
        .module("nandsim")
        .file(&agent, "/bin/liminix-agent")
        .file(&apply, "/bin/ab_apply")
        .file(dir.path().join("k.img"), "/k.img")
        .file(dir.path().join("r.img"), "/r.img")
        .file(dir.path().join("big.img"), "/big.img")
        .file(dir.path().join("ab.json"), "/etc/liminix/ab.json")
        .append("bootImage=0")
        .timeout(300)
        .script(&script)
        .run()
        .unwrap();
    out.assert_success();
    let s = &out.serial;
    assert!(s.contains("refusals unchanged=yes"), "{s}");
    assert!(s.contains("is for board \"other-board\""), "{s}");
    assert!(s.contains("does not fit slot b"), "{s}");
    // image 1 NEW, image 0 VALID, active 0 (formats.md §4.2)
    assert!(s.contains("bc=4800"), "{s}");
    assert!(s.contains(&format!("slotb kernel={ks} rootfs={rs}")), "{s}");
    assert!(s.contains("slota untouched=0"), "{s}");
    assert!(s.contains("\"trial\":\"waiting-for-reboot\""), "{s}");
}
