//! The mipsel agent (scripts/build-agents.sh) on a real MIPS kernel: Debian's 4kc-malta
//! kernel under `qemu-system-mipsel -M malta` (TCG), so every MTD and UBI ioctl goes
//! through the numbers and struct layouts a little-endian MIPS router uses. One boot runs
//! the scenarios of the x86_64 VM tests that need no x86_64 tool in the guest (the guest
//! has only mipsel busybox; images are made on the host): `flashcp` on nandsim with bad
//! blocks and on mtdram (NOR), `ubi-update` swap keeping the old volume and in-place
//! (refused while mounted, refused as a swap without room) on UBI images made by the host's
//! ubinize and written with the agent, `fw_setenv`/`fw_printenv` on an
//! MTD environment whose first block is bad, and `zyxel-bootconfig` on a raw MTD
//! partition. Two more boots: a raw write to block2mtd on a virtio disk cut by killing
//! QEMU, then the journal (on ext4 on a second disk) completing it.

mod flash_checks;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use flash_checks::{changed, KB128};
use liminix_tests::data::pattern;
use liminix_vm::{built_agent, require_program, Disk, VmBuilder, VmOutput};

/// 256 MiB, 128 KiB blocks, 2 KiB pages. mtd0: 16 blocks, 2 and 5 bad (raw images);
/// mtd1: 16 blocks, its first (16) bad (U-Boot environment); mtd2: 128 blocks (UBI);
/// mtd3: 4 blocks (Zyxel bootconfig); mtd4: 128 blocks (a full UBI for in-place updates).
const NANDSIM: &str = "first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15 parts=16,16,128,4,128 badblocks=2,5,16";

fn agent() -> PathBuf {
    built_agent("mipsel-unknown-linux-gnu").unwrap_or_else(|e| panic!("{e}"))
}

/// Host files shipped into the guest under /img.
struct Images {
    dir: tempfile::TempDir,
}

impl Images {
    fn get() -> &'static Images {
        static I: OnceLock<Images> = OnceLock::new();
        I.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let files = flash_checks::images();
            for (name, data) in files {
                std::fs::write(dir.path().join(name), data).unwrap();
            }
            ubinize(dir.path());
            mkenvimage(dir.path());
            Images { dir }
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

const IMAGES: [&str; 12] = [
    "a", "b", "toobig", "r1", "r2", "n1", "n2", "s", "d", "ubi", "ubifull", "env",
];

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ubinize` of `cfg` into `out` for the guest's 128 KiB / 2 KiB NAND; VID headers at 2048
/// (the guest attaches with the same offset).
fn ubinize_to(cfg: &str, dir: &std::path::Path, out: &str) {
    require_program("ubinize", "mtd-utils").unwrap();
    let path = dir.join(format!("{out}.cfg"));
    std::fs::write(&path, cfg).unwrap();
    run(Command::new("ubinize")
        .arg("-o")
        .arg(dir.join(out))
        .args(["-p", "128KiB", "-m", "2048", "-s", "2048"])
        .arg(&path));
}

/// Two UBI images: `ubi` with one volume `rootfs` holding r1 (room to swap), and `ubifull`
/// with an empty UBIFS volume `data` and a `filler` that takes every free block at attach
/// (the volume table's autoresize flag), so that only an in-place update fits.
fn ubinize(dir: &std::path::Path) {
    let r1 = dir.join("r1");
    ubinize_to(
        &format!(
            "[rootfs]\nmode=ubi\nimage={}\nvol_id=0\nvol_size=2MiB\nvol_type=dynamic\nvol_name=rootfs\n",
            r1.display()
        ),
        dir,
        "ubi",
    );
    require_program("mkfs.ubifs", "mtd-utils").unwrap();
    let (empty, ubifs) = (dir.join("empty"), dir.join("data.ubifs"));
    std::fs::create_dir_all(&empty).unwrap();
    run(Command::new("mkfs.ubifs")
        .args(["-m", "2048", "-e", "126976", "-c", "40", "-r"])
        .arg(&empty)
        .arg("-o")
        .arg(&ubifs));
    ubinize_to(
        &format!(
            "[data]\nmode=ubi\nimage={}\nvol_id=0\nvol_size=4MiB\nvol_type=dynamic\nvol_name=data\n\
             [filler]\nmode=ubi\nvol_id=1\nvol_size=1MiB\nvol_type=dynamic\nvol_name=filler\nvol_flags=autoresize\n",
            ubifs.display()
        ),
        dir,
        "ubifull",
    );
}

/// U-Boot's own mkenvimage writes one redundant copy (the CRC in the byte order a
/// little-endian U-Boot reads), which the guest flashes before the agent reads it.
fn mkenvimage(dir: &std::path::Path) {
    require_program("mkenvimage", "u-boot-tools").unwrap();
    let vars = dir.join("vars");
    std::fs::write(&vars, "bootcmd=run boot_a\nbootdelay=3\nslot=a\n").unwrap();
    run(Command::new("mkenvimage")
        .args(["-r", "-s", "0x20000", "-o"])
        .arg(dir.join("env"))
        .arg(&vars));
}

const SCRIPT: &str = r#"
mkdir -p /usr/local/bin /var/lock /etc
for n in flashcp fw_printenv fw_setenv zyxel-bootconfig; do ln -s /bin/liminix-agent /usr/local/bin/$n; done
export PATH=/usr/local/bin:$PATH
rc() { tag=$1; shift; r=0; "$@" || r=$?; echo "$tag rc=$r"; }
# The good blocks of mtd0 in order: the agent skips 2 and 5.
good_blocks() { for b in 0 1 3 4 6 7 8 9 10 11 12 13; do dd if=/dev/mtd0 bs=131072 skip=$b count=1 2>/dev/null; done; }
echo "uname machine=$(uname -m)"

# --- flashcp on NAND with bad blocks ---
json raw-a liminix-agent --json flashcp --journal /tmp/j /img/a /dev/mtd0
flashcp -v /img/b "mtd:NAND simulator partition 0" --journal /tmp/j 2>&1 | sed 's/^/raw-b-log /' 
json raw-b2 liminix-agent --json flashcp --journal /tmp/j /img/b /dev/mtd0
good_blocks > /tmp/dump
same 1500000 /tmp/dump /img/b raw-read-back
rc too-big liminix-agent flashcp --journal /tmp/jnew /img/toobig /dev/mtd0
if [ -e /tmp/jnew ]; then n=1; else n=0; fi; echo "refused-journal-left count=$n"
good_blocks > /tmp/dump
same 1500000 /tmp/dump /img/b untouched-nand
rc usage flashcp -x /img/b /dev/mtd0
ls /tmp/j/staging | wc -l | sed 's/^/staging-left count=/'
ls /tmp/j | grep -c '^tx-' | sed 's/^/records-left count=/' || true

# --- flashcp on NOR (mtdram, 64 KiB blocks) ---
modprobe mtdram total_size=4096 erase_size=64
NOR=/dev/$(grep -l 'mtdram test device' /sys/class/mtd/mtd*/name | head -1 | sed 's,.*/\(mtd[0-9]*\)/name,\1,')
json nor-n1 liminix-agent --json flashcp --journal /tmp/j /img/n1 $NOR
json nor-n2 liminix-agent --json flashcp --journal /tmp/j /img/n2 "mtd:mtdram test device"
same 1000000 $NOR /img/n2 read-back-nor
json nor-erase-all liminix-agent --json flashcp --journal /tmp/j -A /img/s $NOR
same 100000 $NOR /img/s read-back-nor-small
echo "nor-tail nonblank=$(tail -c +131073 $NOR | tr -d '\377' | wc -c)"

# --- ubi-update swap on UBI over nandsim ---
json ubi-image liminix-agent --json flashcp --journal /tmp/j /img/ubi /dev/mtd2
json ubifull-image liminix-agent --json flashcp --journal /tmp/j /img/ubifull /dev/mtd4
modprobe ubi mtd=2,2048 mtd=4,2048
echo "ubi-before name=$(cat /sys/class/ubi/ubi0_0/name)"
json swap liminix-agent --json ubi-update --journal /tmp/j ubi0:rootfs /img/r2
same 1400000 /dev/ubi0_1 /img/r2 swap-new
same 1500000 /dev/ubi0_0 /img/r1 swap-old
echo "ubi-after vol0=$(cat /sys/class/ubi/ubi0_0/name) vol1=$(cat /sys/class/ubi/ubi0_1/name)"
# UBIFS asks the crypto API for every compressor it knows; these two are modules here.
modprobe zstd
modprobe deflate
modprobe ubifs
echo "ubifull names=$(cat /sys/class/ubi/ubi1_0/name),$(cat /sys/class/ubi/ubi1_1/name) free=$(cat /sys/class/ubi/ubi1/avail_eraseblocks)"
mkdir -p /mnt
mount -t ubifs ubi1:data /mnt
rc no-room liminix-agent ubi-update --journal /tmp/j ubi1:data /img/d
rc mounted liminix-agent ubi-update --journal /tmp/j --in-place ubi1:data /img/d
umount /mnt
json in-place liminix-agent --json ubi-update --journal /tmp/j --in-place ubi1:data /img/d
same 1000000 /dev/ubi1_0 /img/d in-place-data

# --- U-Boot environment on MTD (first block bad) ---
printf '/dev/mtd1 0x0 0x20000 0x20000 2\n/dev/mtd1 0x40000 0x20000 0x20000 2\n' > /etc/fw_env.config
liminix-agent flashcp /img/env /dev/mtd1
echo ENV-MKENVIMAGE
fw_printenv
rc setenv fw_setenv slot b upgrade_available 1
rc setenv-space fw_setenv extra "with spaces = x"
rc unset fw_setenv bootdelay
echo ENV-AFTER
fw_printenv
echo ENV-END
echo "env-n slot=$(fw_printenv -n slot)"

# --- Zyxel bootconfig on a raw MTD partition ---
echo ZYXEL
Z="zyxel-bootconfig /dev/mtd3"
$Z get-status
$Z set-image-status 0 valid && $Z set-active-image 0 && $Z set-image-status 1 new
$Z get-status
dd if=/dev/mtd3 bs=1 count=4 2>/dev/null | od -An -tx1
echo ZYXEL-END
"#;

fn guest() -> VmBuilder {
    let imgs = Images::get();
    let mut vm = VmBuilder::mipsel()
        .file(agent(), "/bin/liminix-agent")
        .modprobe("nandsim", NANDSIM)
        .module("ubi")
        .module("mtdram")
        .module("zstd")
        .module("deflate")
        .module("ubifs")
        .script(SCRIPT)
        .timeout(900);
    for name in IMAGES {
        vm = vm.file(imgs.path(name), &format!("/img/{name}"));
    }
    vm
}

fn check_ubi(out: &VmOutput) {
    assert_eq!(out.json_rc("ubi-image").0, 0);
    assert_eq!(out.require_field("ubi-before ", "name"), "rootfs");
    flash_checks::check_ubi_swap(out);
    assert_eq!(out.require_field("ubi-after ", "vol0"), "rootfs.old");
    assert_eq!(out.require_field("ubi-after ", "vol1"), "rootfs");
    assert_eq!(out.json_rc("ubifull-image").0, 0);
    assert_eq!(out.require_field("ubifull ", "names"), "data,filler");
    assert_eq!(
        out.require_field("ubifull ", "free"),
        "0",
        "the filler took every free block"
    );
    flash_checks::check_ubi_in_place(out);
}

fn between<'a>(serial: &'a str, start: &str, end: &str) -> Vec<&'a str> {
    let from = serial
        .split(&format!("\n{start}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {start}: {serial}"));
    from.split(&format!("\n{end}\n"))
        .next()
        .unwrap()
        .lines()
        .collect()
}

fn check_env(out: &VmOutput) {
    assert_eq!(
        between(&out.serial, "ENV-MKENVIMAGE", "setenv rc=0"),
        ["bootcmd=run boot_a", "bootdelay=3", "slot=a"],
        "reads U-Boot's own image"
    );
    assert_eq!(out.require_field("setenv ", "rc"), "0");
    assert_eq!(out.require_field("setenv-space ", "rc"), "0");
    assert_eq!(out.require_field("unset ", "rc"), "0");
    assert_eq!(
        between(&out.serial, "ENV-AFTER", "ENV-END"),
        [
            "bootcmd=run boot_a",
            "extra=with spaces = x",
            "slot=b",
            "upgrade_available=1"
        ],
        "{}",
        out.serial
    );
    assert_eq!(out.require_field("env-n ", "slot"), "b");
}

fn check_bootconfig(out: &VmOutput) {
    assert_eq!(
        between(&out.serial, "ZYXEL", "ZYXEL-END"),
        [
            "Active Image: 1",
            "Image 0 Status: invalid",
            "Image 1 Status: invalid",
            "Active Image: 0",
            "Image 0 Status: valid",
            "Image 1 Status: new",
            " 48 00 ff ff"
        ],
        "{}",
        out.serial
    );
}

#[test]
fn mipsel_agent_flash_ubi_env_and_bootconfig_on_real_drivers() {
    let out = guest().run().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("guest ran {:.1} s", out.elapsed.as_secs_f64());
    out.assert_success();
    assert_eq!(
        out.require_field("uname ", "machine"),
        "mips",
        "{}",
        out.serial
    );
    flash_checks::check_raw_nand(&out, "raw-read-back");
    flash_checks::check_nor(&out, "read-back-nor", "read-back-nor-small");
    check_ubi(&out);
    check_env(&out);
    check_bootconfig(&out);
}

/// block2mtd on the first virtio disk is the raw partition; the second disk holds ext4,
/// mounted on /persist (where the agent's journal lives by default).
const CUT_SETUP: &str = r#"
modprobe block2mtd block2mtd=/dev/vda,128KiB
modprobe crc32c_generic
modprobe ext4
RAW=$(grep -l 'block2mtd: /dev/vda' /sys/class/mtd/mtd*/name | head -1 | sed 's,.*/\(mtd[0-9]*\)/name,\1,')
mkdir -p /persist
mount -t ext4 /dev/vdb /persist
echo 1 > /proc/sys/vm/dirty_expire_centisecs
echo 1 > /proc/sys/vm/dirty_writeback_centisecs
rc() { tag=$1; shift; r=0; "$@" || r=$?; echo "$tag rc=$r"; }
"#;

const CUT_RAW: &str = r#"
liminix-agent flashcp /img/k1 /dev/$RAW
same 3145728 /dev/$RAW /img/k1 cut-raw-before
sync
(while :; do sync; sleep 0.05; done) &
liminix-agent flashcp -v /img/k2 /dev/$RAW 2>&1 | sed 's/^/cut /'
echo "raw write finished before the cut"
"#;

const RECOVER_RAW: &str = r#"
ls /persist/.liminix/journal | sed 's/^/journal-file /'
ls /persist/.liminix/journal/staging | sed 's/^/staged-file /'
same 3145728 /dev/$RAW /img/k2 before-recover-new
rc recover-raw liminix-agent recover
same 3145728 /dev/$RAW /img/k2 after-raw-cut
ls /persist/.liminix/journal/staging | wc -l | sed 's/^/staging-left count=/'
"#;

/// k1 and k2 (k1 with a byte changed in each of its 24 blocks) in a directory of their own.
fn cut_images() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let k1 = pattern(20, 3 * 1024 * 1024);
    let k2 = changed(&k1, KB128, &(0..24).collect::<Vec<_>>());
    let (p1, p2) = (dir.path().join("k1"), dir.path().join("k2"));
    std::fs::write(&p1, k1).unwrap();
    std::fs::write(&p2, k2).unwrap();
    (dir, p1, p2)
}

fn cut_boot(vda: &Disk, vdb: &Disk, images: &(tempfile::TempDir, PathBuf, PathBuf)) -> VmBuilder {
    VmBuilder::mipsel()
        .file(agent(), "/bin/liminix-agent")
        .module("block2mtd")
        .module("crc32c_generic")
        .module("ext4")
        .disk(vda.path())
        .disk(vdb.path())
        .file(&images.1, "/img/k1")
        .file(&images.2, "/img/k2")
        .timeout(900)
}

#[test]
fn mipsel_journal_completes_a_raw_write_cut_by_power_loss() {
    require_program("mkfs.ext4", "e2fsprogs").unwrap();
    let (vda, vdb) = (
        Disk::new("mips-cut-raw", 8 << 20),
        Disk::new("mips-cut-persist", 32 << 20),
    );
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(vdb.path()));
    let images = cut_images();
    let marker = "cut writing: 10%";
    let out = cut_boot(&vda, &vdb, &images)
        .script(&format!("{CUT_SETUP}{CUT_RAW}"))
        .run_until(marker)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("cut boot ran {:.1} s", out.elapsed.as_secs_f64());
    assert!(out.killed_at_marker, "serial:\n{}", out.serial);
    assert_eq!(out.require_field("cut-raw-before ", "equal"), "1");

    let out = cut_boot(&vda, &vdb, &images)
        .script(&format!("{CUT_SETUP}{RECOVER_RAW}"))
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("recovery boot ran {:.1} s", out.elapsed.as_secs_f64());
    out.assert_success();
    flash_checks::check_raw_recovered(&out);
}
