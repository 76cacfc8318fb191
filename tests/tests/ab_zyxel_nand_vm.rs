//! The Zyxel A/B flow on real MTD: nandsim in a QEMU x86_64 guest stands in for the
//! NWA50AX's NAND (partitions kernel, ubi, kernel_1, ubi_1, bootconfig, in erase
//! blocks of 128 KiB). The agent's `apply` (through the `ab_apply` example), running
//! from image 0 (`bootImage=0` on the command line), writes slot B and marks image 1
//! NEW in the bootconfig, read back with the agent's own `zyxel-bootconfig` and raw
//! bytes.
//!
//! * With an `/etc/liminix/ab.json` override naming raw partitions: slot B's kernel and
//!   UBI partitions are written with the raw writer; a bundle for another board and an
//!   oversized image are refused with nothing written.
//! * Without it, the layout comes from the board definition (`vm-ab-zyxel`, the NWA50AX
//!   layout on nandsim's partitions): slot A's UBI partition is attached as the booted
//!   slot's, slot B's is erased and not attached. The agent attaches it, makes the
//!   `rootfs` volume, writes and reads it back and detaches it; the guest re-attaches it
//!   with mtd-utils to compare the volume with the image. An oversized rootfs is refused
//!   before the attach, a volume too small on a partition someone else attached is
//!   made again, and a partition holding other data is refused with the `ubiformat`
//!   advice, which then works. Slot A's kernel and volume stay as they were throughout.
//! * Image patches: with slot A running (its kernel on a partition with a bad block), the real
//!   `liminix-agent apply` of a signed bundle patched against A's images writes slot B; one
//!   patched against other images is refused (exit 10) with slot B untouched.

use liminix_build_tools::images::ImageInput;
use liminix_tests::ab_layout::zyxel_nandsim_ab_json;
use liminix_tests::data::pattern;
use liminix_tests::images::image_bundle;
use liminix_vm::{static_agent_with_ab_apply, VmBuilder, VmOutput};
use sha2::{Digest, Sha256};

const NANDSIM: &str = "modprobe nandsim first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15 parts=8,16,8,16,1";

#[test]
fn zyxel_apply_on_nandsim_writes_slot_b_and_marks_it_new() {
    let (agent, apply) = static_agent_with_ab_apply().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let kernel = pattern(1, 700 * 1024 + 123);
    let rootfs = pattern(2, 1500 * 1024 + 7);
    let files = [
        ("k.img", kernel.clone()),
        ("r.img", rootfs.clone()),
        ("big.img", pattern(3, 1024 * 1024 + 1)),
        (
            "ab.json",
            zyxel_nandsim_ab_json("NAND simulator partition 4").into_bytes(),
        ),
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
    assert!(
        s.contains("ab_apply: [wrong_board] bundle is for board \"other-board\""),
        "{s}"
    );
    assert!(
        s.contains("ab_apply: [layout] slot layout: kernel image of 1048577 bytes does not fit slot b (1048576 bytes)"),
        "{s}"
    );
    // image 1 NEW, image 0 VALID, active 0 (docs/formats/zyxel-bootconfig.md, "Byte layout")
    assert!(s.contains("bc=4800"), "{s}");
    assert!(s.contains(&format!("slotb kernel={ks} rootfs={rs}")), "{s}");
    assert!(s.contains("slota untouched=0"), "{s}");
    assert!(s.contains("\"trial\":\"waiting-for-reboot\""), "{s}");
}

/// nandsim for the `vm-ab-zyxel` board: kernel 1 MiB, ubi 8 MiB, kernel_1, ubi_1,
/// bootconfig (in 128 KiB blocks).
const NANDSIM_AB: &str = "modprobe nandsim first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15 parts=8,64,8,64,1";
/// What a UBI device on a 64-PEB partition of this chip offers its volumes: 64 PEBs
/// less 4 and the 40 the kernel keeps for bad blocks, in LEBs of 129024 bytes. The
/// board definition's rootfs limit.
const ROOM: usize = 20 * 129_024;

fn sha(d: &[u8]) -> String {
    hex::encode(Sha256::digest(d))
}

/// The JSON document after `TAG ` on the console.
fn doc(out: &VmOutput, tag: &str) -> serde_json::Value {
    let line = out
        .lines_starting(&format!("{tag} "))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {tag} line:\n{}", out.serial));
    serde_json::from_str(&line[tag.len() + 1..]).unwrap_or_else(|e| panic!("{tag}: {e}: {line}"))
}

#[test]
fn zyxel_apply_from_the_board_file_attaches_slot_b_and_makes_its_volume() {
    let (agent, apply) = static_agent_with_ab_apply().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let imgs = [
        ("ka", pattern(10, 600 * 1024 + 5)),
        ("ra", pattern(11, 1_000_000)),
        ("k", pattern(12, 700 * 1024 + 123)),
        ("r", pattern(13, 1_500_007)),
        ("r2", pattern(14, 2_400_000)),
        ("big", pattern(15, ROOM + 1)),
        ("junk", pattern(16, 512 * 1024)),
        ("k2", pattern(17, 650 * 1024)),
    ];
    let mut vm = VmBuilder::new()
        .module("nandsim")
        .module("ubi")
        .file(&agent, "/bin/liminix-agent")
        .file(&apply, "/bin/ab_apply")
        .host_tool("ubiattach")
        .host_tool("ubidetach")
        .host_tool("ubimkvol")
        .host_tool("ubirmvol")
        .host_tool("ubiupdatevol")
        .host_tool("ubiformat")
        .host_tool("flash_erase")
        .append("bootImage=0")
        .timeout(600);
    for (name, data) in &imgs {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        vm = vm.file(&p, &format!("/{name}.img"));
    }
    let img = |n: &str| &imgs.iter().find(|(m, _)| *m == n).unwrap().1;
    // `ROLE=/NAME.img:SHA256` arguments of ab_apply
    let arg = |role: &str, n: &str| format!("{role}=/{n}.img:{}", sha(img(n)));
    let len = |n: &str| img(n).len();
    let script = format!(
        r#"
{NANDSIM_AB}
modprobe ubi
ln -s /bin/liminix-agent /bin/zyxel-bootconfig
mkdir -p /etc/liminix
echo vm-ab-zyxel > /etc/liminix/board
zyxel-bootconfig /dev/mtd4 set-image-status 0 valid
zyxel-bootconfig /dev/mtd4 set-active-image 0
# Slot A as the running system has it: its kernel, its UBI partition attached (ubi.mtd=).
liminix-agent flashcp /ka.img /dev/mtd0
ubiattach -m 1 -d 0 >/dev/null
ubimkvol /dev/ubi0 -N rootfs -m >/dev/null
ubiupdatevol /dev/ubi0_0 /ra.img
sha() {{ sha256sum | cut -c1-64; }}
eq() {{ [ "$1" = "$2" ] && echo 1 || echo 0; }}
slota() {{ echo "$(head -c {kal} /dev/mtd0 | sha)/$(head -c {ral} /dev/ubi0_0 | sha)/$(cat /sys/class/ubi/ubi0/volumes_count)"; }}
slotb() {{ cat /dev/mtd2 /dev/mtd3 /dev/mtd4 | sha; }}
ubidevs() {{ ls /sys/class/ubi | grep -c '^ubi[0-9]*$' || true; }}
vol=/sys/class/ubi/ubi1/ubi1_0
a0=$(slota)
echo "slota kernel=$(head -c {kal} /dev/mtd0 | sha) rootfs=$(head -c {ral} /dev/ubi0_0 | sha)"

# 1. A rootfs over the board's limit: refused before slot B's partition is touched.
b0=$(slotb)
if ab_apply vm-ab-zyxel {k} {big}; then exit 10; fi
echo "oversize ubidevs=$(ubidevs) slotb_same=$(eq "$(slotb)" "$b0")"

# 2. Slot B erased and not attached: attached, volume made, written, detached.
ab_apply vm-ab-zyxel {k} {r} > /tmp/r1
echo "apply1 $(tr -d '\n ' < /tmp/r1)"
echo "after1 ubidevs=$(ubidevs) bc=$(od -An -tx1 -N2 /dev/mtd4 | tr -d ' \n')"
echo "status1 $(liminix-agent --json status | tr -d '\n ')"
ubiattach -m 3 -d 1 >/dev/null
echo "check1 name=$(cat $vol/name) type=$(cat $vol/type) lebs=$(cat $vol/reserved_ebs) rootfs=$(head -c {rl} /dev/ubi1_0 | sha) kernel=$(head -c {kl} /dev/mtd2 | sha) slota_same=$(eq "$(slota)" "$a0")"

# 3. Attached by someone else, with a volume too small for the image: made again, left attached.
ubirmvol /dev/ubi1 -N rootfs
ubimkvol /dev/ubi1 -N rootfs -S 2 >/dev/null
ab_apply vm-ab-zyxel {k} {r2} > /tmp/r2
echo "apply2 $(tr -d '\n ' < /tmp/r2)"
echo "check2 ubidevs=$(ubidevs) lebs=$(cat $vol/reserved_ebs) rootfs=$(head -c {r2l} /dev/ubi1_0 | sha) slota_same=$(eq "$(slota)" "$a0")"

# 4. Something else in slot B's UBI partition (the vendor firmware): refused, nothing written.
ubidetach -d 1
flash_erase -q /dev/mtd3 0 0
liminix-agent flashcp /junk.img /dev/mtd3
b1=$(slotb)
if ab_apply vm-ab-zyxel {k2} {r} 2>/tmp/e; then exit 11; fi
echo "junk ubidevs=$(ubidevs) slotb_same=$(eq "$(slotb)" "$b1")"
echo "junk-error $(cat /tmp/e)"

# 5. Following the advice: ubiformat, apply again.
ubiformat -y -q /dev/mtd3
ab_apply vm-ab-zyxel {k2} {r} > /tmp/r3
echo "apply3 $(tr -d '\n ' < /tmp/r3)"
ubiattach -m 3 -d 1 >/dev/null
echo "check3 rootfs=$(head -c {rl} /dev/ubi1_0 | sha) kernel=$(head -c {k2l} /dev/mtd2 | sha) slota_same=$(eq "$(slota)" "$a0")"
"#,
        k = arg("kernel", "k"),
        k2 = arg("kernel", "k2"),
        r = arg("rootfs", "r"),
        r2 = arg("rootfs", "r2"),
        big = arg("rootfs", "big"),
        kal = len("ka"),
        ral = len("ra"),
        kl = len("k"),
        k2l = len("k2"),
        rl = len("r"),
        r2l = len("r2"),
    );
    let out = vm.script(&script).run().unwrap();
    out.assert_success();
    let s = &out.serial;
    let field = |p: &str, k: &str| out.require_field(p, k).to_owned();
    assert_eq!(field("slota", "kernel"), sha(img("ka")));
    assert_eq!(field("slota", "rootfs"), sha(img("ra")));

    // 1: refused by the board's limit, nothing attached or written
    assert!(s.contains("ab_apply: [layout] "), "{s}");
    assert!(s.contains("does not fit slot b"), "{s}");
    assert_eq!(field("oversize", "ubidevs"), "1");
    assert_eq!(field("oversize", "slotb_same"), "1");

    // 2: attached as ubi1, `rootfs` made with all the room, detached again; trial armed
    let r1 = doc(&out, "apply1");
    assert_eq!(r1["to"], "b", "{r1}");
    assert_eq!(r1["ubi_attached"]["mtd"], 3, "{r1}");
    assert_eq!(r1["ubi_attached"]["ubi"], 1, "{r1}");
    assert!(r1["ubi_attached"].get("detach_error").is_none(), "{r1}");
    assert_eq!(
        r1["install"]["rootfs_volume"]["created"]["bytes"], ROOM,
        "{r1}"
    );
    assert_eq!(field("after1", "ubidevs"), "1");
    assert_eq!(field("after1", "bc"), "4800");
    let st = doc(&out, "status1");
    assert_eq!(st["ab"]["trial"], "waiting-for-reboot", "{st}");
    assert_eq!(field("check1", "name"), "rootfs");
    assert_eq!(field("check1", "type"), "dynamic");
    assert_eq!(field("check1", "lebs"), "20");
    assert_eq!(field("check1", "rootfs"), sha(img("r")));
    assert_eq!(field("check1", "kernel"), sha(img("k")));
    assert_eq!(field("check1", "slota_same"), "1");

    // 3: the attached device is used as it is and stays attached; the volume grows
    let r2 = doc(&out, "apply2");
    assert!(r2.get("ubi_attached").is_none(), "{r2}");
    assert_eq!(
        r2["install"]["rootfs_volume"]["remade"]["bytes"], ROOM,
        "{r2}"
    );
    assert_eq!(field("check2", "ubidevs"), "2");
    assert_eq!(field("check2", "lebs"), "20");
    assert_eq!(field("check2", "rootfs"), sha(img("r2")));
    assert_eq!(field("check2", "slota_same"), "1");

    // 4: foreign data refused before the attach, with what to do
    assert_eq!(field("junk", "ubidevs"), "1");
    assert_eq!(field("junk", "slotb_same"), "1");
    let e = out.lines_starting("junk-error").join("\n");
    assert!(e.contains("ab_apply: [device] "), "{e}");
    assert!(e.contains("ubiformat /dev/mtd3"), "{e}");
    assert!(e.contains("neither UBI nor erased"), "{e}");

    // 5: after ubiformat the volume is made on the (empty) UBI device
    let r3 = doc(&out, "apply3");
    assert_eq!(
        r3["install"]["rootfs_volume"]["created"]["bytes"], ROOM,
        "{r3}"
    );
    assert_eq!(field("check3", "rootfs"), sha(img("r")));
    assert_eq!(field("check3", "kernel"), sha(img("k2")));
    assert_eq!(field("check3", "slota_same"), "1");
}

/// Slot A's kernel partition with its third erase block bad (chip block 2): the raw writer
/// passes over it, so the running kernel is not the partition's first bytes.
const NANDSIM_AB_BAD: &str = "modprobe nandsim first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15 parts=8,64,8,64,1 badblocks=2";

/// `data` with a few bytes changed every 64 KiB: a rebuild that differs a little.
fn edited(data: &[u8], salt: u8) -> Vec<u8> {
    let mut d = data.to_vec();
    for at in (1000..d.len()).step_by(64 << 10) {
        d[at] ^= salt;
    }
    d
}

/// A signed bundle for `vm-ab-zyxel` of kernel and rootfs, each a patch against its base.
fn patch_bundle(
    dir: &std::path::Path,
    key: &liminix_bundle::SecretKey,
    out: &str,
    images: [(&str, &str); 2],
    bases: [&str; 2],
) -> std::path::PathBuf {
    let inputs: Vec<ImageInput> = images
        .iter()
        .zip(bases)
        .map(|((name, file), base)| ImageInput {
            name: (*name).into(),
            file: dir.join(file),
            base: Some(dir.join(base)),
        })
        .collect();
    let path = dir.join(out);
    image_bundle(key, "vm-ab-zyxel", &inputs, &path);
    path
}

/// Image patches on the Zyxel layout, on real NAND and UBI drivers: slot A runs (kernel on a
/// partition with a bad block, rootfs in its attached UBI volume); a signed bundle of patches
/// against those two images is applied by `liminix-agent apply`, which reads the bases from
/// slot A (passing over the bad block as the writer did) and writes slot B. A bundle patched
/// against other images is refused first with exit 10, nothing written.
#[test]
fn zyxel_patch_bundle_is_applied_against_the_running_slot_on_nand() {
    let (agent, _) = static_agent_with_ab_apply().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let key = liminix_bundle::SecretKey::generate();
    let ka = pattern(20, 600 * 1024 + 5);
    let ra = pattern(21, 1_000_000);
    let (kb, rb) = (edited(&ka, 0x5a), edited(&ra, 0xa5));
    let other = pattern(22, 600 * 1024 + 5);
    for (name, data) in [
        ("ka", &ka),
        ("ra", &ra),
        ("kb", &kb),
        ("rb", &rb),
        ("other", &other),
    ] {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    let patch = patch_bundle(
        dir.path(),
        &key,
        "patch.bnd",
        [("kernel", "kb"), ("rootfs", "rb")],
        ["ka", "ra"],
    );
    let wrong = patch_bundle(
        dir.path(),
        &key,
        "wrong.bnd",
        [("kernel", "kb"), ("rootfs", "rb")],
        ["other", "ra"],
    );
    let whole = (kb.len() + rb.len()) as u64;
    let sent = std::fs::metadata(&patch).unwrap().len();
    assert!(sent * 4 < whole, "patch bundle {sent} bytes for {whole}");
    std::fs::write(dir.path().join("build.pub"), key.public().to_file_text()).unwrap();
    let script = format!(
        r#"
exec 2>&1
{NANDSIM_AB_BAD}
modprobe ubi
ln -s /bin/liminix-agent /bin/zyxel-bootconfig
mkdir -p /etc/liminix/trusted-keys
echo vm-ab-zyxel > /etc/liminix/board
cp /img/board.toml /etc/liminix/board.toml
cp /img/build.pub /etc/liminix/trusted-keys/
zyxel-bootconfig /dev/mtd4 set-image-status 0 valid
zyxel-bootconfig /dev/mtd4 set-active-image 0
liminix-agent flashcp /img/ka /dev/mtd0
ubiattach -m 1 -d 0 >/dev/null
ubimkvol /dev/ubi0 -N rootfs -m >/dev/null
ubiupdatevol /dev/ubi0_0 /img/ra
sha() {{ sha256sum | cut -c1-64; }}
slotb() {{ cat /dev/mtd2 /dev/mtd3 /dev/mtd4 | sha; }}
echo "bed bad=$(cat /sys/class/mtd/mtd0/bad_blocks) straight=$(head -c {kal} /dev/mtd0 | sha)"
b0=$(slotb)
r=0; liminix-agent apply /img/wrong.bnd > /tmp/w 2>&1 || r=$?
echo "wrong rc=$r slotb_same=$([ "$(slotb)" = "$b0" ] && echo 1 || echo 0)"
echo "wrong-error $(tr '\n' ' ' < /tmp/w)"
liminix-agent --json apply /img/patch.bnd > /tmp/p
echo "applied $(tr -d '\n ' < /tmp/p)"
ubiattach -m 3 -d 1 >/dev/null
echo "slotb kernel=$(head -c {kbl} /dev/mtd2 | sha) rootfs=$(head -c {rbl} /dev/ubi1_0 | sha) bc=$(od -An -tx1 -N2 /dev/mtd4 | tr -d ' \n')"
"#,
        kal = ka.len(),
        kbl = kb.len(),
        rbl = rb.len(),
    );
    let out = VmBuilder::new()
        .module("nandsim")
        .module("ubi")
        .file(&agent, "/bin/liminix-agent")
        .host_tool("ubiattach")
        .host_tool("ubimkvol")
        .host_tool("ubiupdatevol")
        .file(dir.path().join("ka"), "/img/ka")
        .file(dir.path().join("ra"), "/img/ra")
        .file(&patch, "/img/patch.bnd")
        .file(&wrong, "/img/wrong.bnd")
        .file(dir.path().join("build.pub"), "/img/build.pub")
        .file(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../boards/devices/vm-ab-zyxel.toml"
            ),
            "/img/board.toml",
        )
        .append("bootImage=0")
        .timeout(600)
        .script(&script)
        .run()
        .unwrap();
    out.assert_success();
    let field = |p: &str, k: &str| out.require_field(p, k).to_owned();
    // The bad block is real, and it is why the base must be read as the writer wrote it.
    assert_eq!(field("bed", "bad"), "1");
    assert_ne!(field("bed", "straight"), sha(&ka));
    // Patched against a kernel slot A does not hold: exit 10, slot B and bootconfig as before.
    assert_eq!(field("wrong", "rc"), "10", "{}", out.serial);
    assert_eq!(field("wrong", "slotb_same"), "1");
    let e = out.lines_starting("wrong-error").join("\n");
    assert!(e.contains("running slot a"), "{e}");
    let applied = doc(&out, "applied");
    assert_eq!(applied["ab"]["from"], "a", "{applied}");
    assert_eq!(applied["ab"]["to"], "b", "{applied}");
    assert_eq!(field("slotb", "kernel"), sha(&kb));
    assert_eq!(field("slotb", "rootfs"), sha(&rb));
    assert_eq!(field("slotb", "bc"), "4800");
}
