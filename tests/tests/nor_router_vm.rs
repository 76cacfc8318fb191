//! The NOR router guest (liminix_vm::router) on the host's real kernel in QEMU (TCG): its root
//! is a squashfs made by our own writer (build-tools `image::squashfs`, i.e. mksquashfs) inside
//! `firmware.bin` on a block2mtd flash disk, s6-svscan is PID 1, dropbear answers the host's
//! OpenSSH client through a forwarded loopback port with the host key baked into the image.
//!
//! Oracles: the host's `ssh` with StrictHostKeyChecking against a known_hosts holding only the
//! built key (a different key is shown to fail); the serial console's boot banners; the flash
//! disk read back on the host after the guest powered off.
//!
//! Guests run one at a time (a lock): the machine's two cores are shared.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use liminix_testdata::pattern;
use liminix_tests::nor_bed::{events, NorBed};
use liminix_vm::router::{Keys, Router};
use liminix_vm::Disk;

/// Generous: on a 2-core machine shared with other builds one boot took up to 75 s (docs/testing.md).
const BOOT: Duration = Duration::from_secs(240);
const SSH: Duration = Duration::from_secs(60);
/// The flash disk's write rate in the power-cut scenario, and when the power goes after the
/// write phase began: about half of the changed blocks reach the disk.
const CUT_BPS: u64 = 1 << 20;
const CUT_AFTER: Duration = Duration::from_secs(3);

fn one_guest_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every scenario shares ([`NorBed`]), made once.
struct Bed;

impl Bed {
    fn get() -> &'static NorBed {
        static B: OnceLock<NorBed> = OnceLock::new();
        B.get_or_init(NorBed::new)
    }
}

/// A flash disk holding firmware A (built once), with the firmware bytes.
fn disk_with_a(bed: &NorBed, tag: &str) -> (Disk, &'static [u8]) {
    static A: OnceLock<Vec<u8>> = OnceLock::new();
    let fw = A.get_or_init(|| bed.firmware_with("firmware A", None));
    (bed.disk(tag, fw), fw)
}

/// Boots `disk` and waits for the first boot and for ssh.
fn boot(bed: &NorBed, disk: &Path) -> Router {
    let mut r = Router::boot(disk, &bed.layout, &bed.keys).unwrap();
    up(&mut r, 1);
    r
}

/// Waits for the `n`th boot banner and for ssh; prints the times (docs/testing.md quotes them).
fn up(r: &mut Router, n: usize) {
    let banner = r.wait_for_boot(n, BOOT).unwrap();
    let ssh = r.wait_for_ssh(SSH).unwrap();
    eprintln!(
        "boot {n}: banner {:.1} s after QEMU started, ssh {:.1} s later",
        banner.as_secs_f64(),
        ssh.as_secs_f64()
    );
}

#[test]
fn boots_from_flash_and_answers_ssh_with_the_agent() {
    let _g = one_guest_at_a_time();
    let bed = Bed::get();
    let (disk, _) = disk_with_a(bed, "router-boot");
    let r = boot(bed, disk.path());
    assert_eq!(r.banners(), ["firmware A"], "{}", r.serial());
    assert_eq!(r.ssh_ok("cat /etc/banner").unwrap().trim(), "firmware A");
    // The root is the squashfs on the rootfs partition, read-only; s6-svscan is PID 1.
    let mounts = r.ssh_ok("cat /proc/mounts").unwrap();
    let root = mounts.lines().find(|l| l.split(' ').nth(1) == Some("/"));
    let root = root.unwrap_or_else(|| panic!("no / in {mounts}"));
    assert!(
        root.starts_with("/dev/mtdblock") && root.contains(" squashfs ro"),
        "{root}"
    );
    let mtd = r.ssh_ok("cat /proc/mtd").unwrap();
    for name in ["\"flash\"", "\"firmware\"", "\"persist\"", "\"rootfs\""] {
        assert!(mtd.contains(name), "{name} missing from /proc/mtd:\n{mtd}");
    }
    let pid1 = r.ssh_ok("cat /proc/1/comm").unwrap();
    assert_eq!(pid1.trim(), "s6-svscan");
    let status = r.ssh_ok("liminix-agent status --json").unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["board"], "qemu-nor-router", "{status}");
    r.power_cut();
}

#[test]
fn a_reboot_and_a_power_cut_come_back_with_the_same_host_key() {
    let _g = one_guest_at_a_time();
    let bed = Bed::get();
    let (disk, _) = disk_with_a(bed, "router-reboot");
    let mut r = boot(bed, disk.path());
    // The check can fail: a known_hosts naming another key refuses the router.
    let other = Keys::generate().unwrap();
    let wrong = r
        .with_known_host(&other.host_public, "cat /etc/banner")
        .unwrap();
    assert!(!wrong.success(), "a different host key was accepted");
    assert!(
        wrong.stderr.contains("HOST IDENTIFICATION HAS CHANGED")
            || wrong.stderr.contains("verification failed"),
        "{}",
        wrong.stderr
    );
    // `reboot` goes through PID 1: s6-svscan's finish reboots hard (no maintenance system).
    let _ = r.ssh("reboot");
    up(&mut r, 2);
    assert_eq!(r.banners(), ["firmware A", "firmware A"]);
    assert_eq!(r.ssh_ok("cat /etc/banner").unwrap().trim(), "firmware A");
    r.power_cut();
    let r = boot(bed, disk.path());
    assert_eq!(r.banners(), ["firmware A"], "{}", r.serial());
    r.power_cut();
}

#[test]
fn the_flash_read_back_after_power_off_is_what_was_written() {
    let _g = one_guest_at_a_time();
    let bed = Bed::get();
    let (disk, firmware) = disk_with_a(bed, "router-readback");
    let r = boot(bed, disk.path());
    let data = pattern(11, 300_000);
    r.ssh_with_input("cat > /tmp/persist.bin", &data).unwrap();
    let out = r
        .ssh_ok("flashcp -v /tmp/persist.bin mtd:persist 2>&1")
        .unwrap();
    eprintln!("{out}");
    r.power_off(Duration::from_secs(30)).unwrap();
    let flash = std::fs::read(disk.path()).unwrap();
    let fw_len = bed.layout.firmware as usize;
    assert_eq!(flash.len() as u64, bed.layout.flash_bytes());
    assert!(
        flash[..firmware.len()] == *firmware,
        "the firmware partition changed"
    );
    assert!(flash[firmware.len()..fw_len].iter().all(|&b| b == 0xff));
    assert!(
        flash[fw_len..fw_len + data.len()] == data,
        "persist differs from what was written"
    );
    let rest = &flash[fw_len + data.len()..];
    assert!(
        rest.iter().all(|&b| b == 0xff),
        "persist past the data is not erased"
    );
}

/// Liminix's manual NOR update on the running router: the write under the mounted root is
/// refused; `levitate` hands PID 1 to the maintenance root in RAM through s6's finish hook;
/// ssh answers there with the same host key; `flashcp -v firmware-B.bin mtd:firmware`;
/// `reboot` boots firmware B from the flash. The host then reads firmware B back from the disk.
#[test]
fn levitate_then_flashcp_then_reboot_boots_firmware_b() {
    let _g = one_guest_at_a_time();
    let bed = Bed::get();
    let (disk, _) = disk_with_a(bed, "router-levitate");
    let firmware_b = bed.firmware_with("firmware B", None);
    let mut r = boot(bed, disk.path());
    r.ssh_with_input("cat > /tmp/firmware-B.bin", &firmware_b)
        .unwrap();
    let refused = r
        .ssh("liminix-agent --json flashcp /tmp/firmware-B.bin mtd:firmware")
        .unwrap();
    assert!(
        !refused.success(),
        "flashcp under the running root was not refused"
    );
    let text = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        text.contains("levitate"),
        "the refusal names no way out: {text}"
    );
    assert_eq!(r.ssh_ok("cat /etc/banner").unwrap().trim(), "firmware A");

    let mark = r.serial().len();
    let lev = r.ssh("liminix-agent levitate").unwrap();
    assert!(lev.stdout.contains("maintenance root ready"), "{lev:?}");
    let ready = r
        .wait_for_console("maintenance: ready", mark, BOOT)
        .unwrap();
    let ssh = r.wait_for_ssh(SSH).unwrap();
    eprintln!(
        "levitate: maintenance init ready {:.1} s after the command returned, ssh {:.1} s later",
        ready.as_secs_f64(),
        ssh.as_secs_f64()
    );
    let banner = r.ssh_ok("cat /etc/banner").unwrap();
    assert!(banner.contains("MAINTENANCE MODE"), "{banner}");
    r.ssh_with_input("cat > /tmp/firmware-B.bin", &firmware_b)
        .unwrap();
    let out = r
        .ssh_ok("flashcp -v /tmp/firmware-B.bin mtd:firmware 2>&1")
        .unwrap();
    eprintln!("{out}");
    let _ = r.ssh("reboot");
    up(&mut r, 2);
    assert_eq!(r.banners(), ["firmware A", "firmware B"], "{}", r.serial());
    assert_eq!(r.ssh_ok("cat /etc/banner").unwrap().trim(), "firmware B");
    r.power_off(Duration::from_secs(30)).unwrap();
    let flash = std::fs::read(disk.path()).unwrap();
    assert!(
        flash[..firmware_b.len()] == firmware_b,
        "the firmware partition does not hold firmware B"
    );
}

/// A power cut in the maintenance root halfway through `flashcp` of a firmware that differs
/// from the flash in most erase blocks. The flash journal is in RAM there (no writable
/// filesystem on a squashfs router), so nothing can finish or undo the write afterwards. The
/// guest's write-back is made prompt first, because block2mtd keeps written pages in the page
/// cache where a NOR chip has no cache. Oracle: the disk read back on the host, 512-byte sector
/// by sector: each holds the old image's bytes, the new one's, or is erased, and both images
/// are represented; then the next boot: the preinit cannot mount the mixed root (the router
/// needs its boot loader's recovery, docs/testing.md).
#[test]
fn a_power_cut_during_the_levitated_flash_write_leaves_old_and_new_blocks() {
    let _g = one_guest_at_a_time();
    let bed = Bed::get();
    let (disk, firmware_a) = disk_with_a(bed, "router-cut");
    let filler = pattern(5, 3 << 20);
    let firmware_c = bed.firmware_with("firmware C", Some(&filler));
    let mut r = Router::boot_with(disk.path(), &bed.layout, &bed.keys, Some(CUT_BPS)).unwrap();
    up(&mut r, 1);
    let mark = r.serial().len();
    let lev = r.ssh("liminix-agent levitate").unwrap();
    assert!(lev.stdout.contains("maintenance root ready"), "{lev:?}");
    r.wait_for_console("maintenance: ready", mark, BOOT)
        .unwrap();
    r.wait_for_ssh(SSH).unwrap();
    r.ssh_with_input("cat > /tmp/firmware-C.bin", &firmware_c)
        .unwrap();
    r.ssh_ok(
        "echo 5 > /proc/sys/vm/dirty_writeback_centisecs; \
         echo 5 > /proc/sys/vm/dirty_expire_centisecs; \
         setsid sh -c 'flashcp -v /tmp/firmware-C.bin mtd:firmware' \
         </dev/null >/dev/console 2>&1 &",
    )
    .unwrap();
    let mark = r.serial().len();
    r.wait_for_console("writing ", mark, BOOT).unwrap();
    std::thread::sleep(CUT_AFTER);
    let serial = r.power_cut();
    let tail: String = serial.lines().rev().take(8).collect::<Vec<_>>().join("\n");
    eprintln!("cut after:\n{tail}");

    let flash = std::fs::read(disk.path()).unwrap();
    let len = firmware_a.len().max(firmware_c.len());
    let [mut same, mut old, mut new, mut erased] = [0usize; 4];
    for (i, sector) in flash[..len].chunks(512).enumerate() {
        let at = i * 512;
        let of = |fw: &[u8]| -> Vec<u8> {
            let mut v = fw.get(at..(at + 512).min(fw.len())).unwrap_or(&[]).to_vec();
            v.resize(sector.len(), 0xff);
            v
        };
        let (a, c) = (of(firmware_a), of(&firmware_c));
        match (sector == a.as_slice(), sector == c.as_slice()) {
            (true, true) => same += 1,
            (true, false) => old += 1,
            (false, true) => new += 1,
            _ if sector.iter().all(|&b| b == 0xff) => erased += 1,
            _ => panic!("sector at {at:#x} is neither image nor erased"),
        }
    }
    eprintln!(
        "firmware range after the cut, in 512-byte sectors: {same} the same in both images, \
         {new} of the new image, {old} of the old, {erased} erased"
    );
    assert!(old > 0, "the cut came after the whole write");
    assert!(new > 0, "nothing of the new image reached the flash");

    // The squashfs superblock (first block of the root) is the new one, its tables (at the
    // end of the image) not yet written: the kernel refuses to mount the mixed root.
    let mut r = Router::boot(disk.path(), &bed.layout, &bed.keys).unwrap();
    let outcome = r.wait_for_boot(1, BOOT);
    let serial = r.serial();
    let tail: String = serial.lines().rev().take(6).collect::<Vec<_>>().join("\n");
    eprintln!(
        "next boot: banners {:?}; console tail:\n{tail}",
        r.banners()
    );
    assert!(outcome.is_err(), "the half-written firmware booted");
    assert!(
        serial.contains("LIMINIX-PREINIT-FAILED mount /dev/mtdblock"),
        "{serial}"
    );
    r.power_cut();
}

/// The one-command NOR update, in one boot. First an image for a partition nothing mounts is
/// applied from the running system without levitating. Then the guest's RAM is filled with a tmpfs
/// file until less is available than the update needs: `update.sh` refuses with exit 5 and
/// the numbers, and nothing changed (no bundle in /run, no maintenance root, s6-svscan still
/// PID 1, firmware A still answering). Then, with the RAM freed, `update.sh` sends the bundle
/// of firmware B into RAM, the agent verifies it, levitates carrying it, `apply` runs in the
/// maintenance root (strict host key check on the way in), and the router reboots. Oracles:
/// the next boot's banner and `/etc/banner` are firmware B's; after power-off the disk's
/// firmware range is firmware B byte for byte, and `persist` holds the first image.
#[test]
fn update_sh_refuses_what_ram_cannot_hold_then_updates_firmware_b_through_ram() {
    let _g = one_guest_at_a_time();
    let bed = Bed::get();
    let (disk, _) = disk_with_a(bed, "router-update-sh");
    let firmware_b = bed.firmware_with("firmware B", None);
    let bundle = bed.bundle(&firmware_b, "firmware-B");
    let mut r = boot(bed, disk.path());
    let data = pattern(17, 300_000);
    free_target_is_applied_from_the_running_system(bed, &r, &data);

    // Leave about 24 MiB of MemAvailable: less than bundle, images, root and margin.
    r.ssh_ok(
        "mount -o remount,size=100% /tmp && \
         kib=$(sed -n 's/^MemAvailable: *\\([0-9]*\\) kB/\\1/p' /proc/meminfo) && \
         dd if=/dev/zero of=/tmp/ballast bs=1024 count=$((kib - 24576)) 2>/dev/null",
    )
    .unwrap();
    let refused = bed.update_sh(&r, &bundle, &["--json"]);
    assert_eq!(refused.status.code(), Some(5));
    let failed = events(&refused, "failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["kind"], "no_space", "{failed:?}");
    let message = failed[0]["message"].as_str().unwrap();
    assert!(
        message.contains("MemAvailable") && message.contains("nothing was changed"),
        "{message}"
    );
    let untouched = r
        .ssh_ok(
            "test ! -e /run/liminix/update.bundle && test ! -e /run/maintenance && \
             cat /proc/1/comm /etc/banner",
        )
        .unwrap();
    assert_eq!(untouched, "s6-svscan\nfirmware A\n");
    r.ssh_ok("rm /tmp/ballast").unwrap();

    // A patch made against firmware that is not on the router: refused from the header, before
    // anything is sent (exit 10); with the whole bundle named, that one goes instead.
    let firmware_c = bed.firmware_with("firmware C", None);
    let patch = bed.patch_bundle(&firmware_b, &firmware_c, "firmware-B-from-C");
    let refused = bed.update_sh(&r, &patch, &["--json"]);
    assert_eq!(refused.status.code(), Some(10));
    let failed = events(&refused, "failed");
    assert_eq!(failed[0]["kind"], "base_mismatch", "{failed:?}");
    let untouched = r
        .ssh_ok("test ! -e /run/liminix/update.bundle && cat /proc/1/comm /etc/banner")
        .unwrap();
    assert_eq!(untouched, "s6-svscan\nfirmware A\n");
    let full = bundle.display().to_string();
    let out = bed.update_sh(&r, &patch, &["--json", "--full-bundle", &full]);
    assert!(out.status.success());
    assert_eq!(events(&out, "fallback").len(), 1);
    let plan = events(&out, "image_plan");
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0]["levitate"], true, "{plan:?}");
    let ready = events(&out, "maintenance");
    assert_eq!(ready.len(), 1);
    eprintln!(
        "maintenance root answered {} s after levitate",
        ready[0]["seconds"]
    );
    let done = events(&out, "done");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["levitated"], true);
    assert_eq!(done[0]["rebooted"], true);
    let image = &done[0]["images"][0];
    assert_eq!(image["target"], "mtd:firmware");
    assert_eq!(image["bytes"].as_u64(), Some(firmware_b.len() as u64));
    assert!(image["rewritten_blocks"].as_u64().unwrap() > 0, "{image}");

    up(&mut r, 2);
    assert_eq!(r.banners(), ["firmware A", "firmware B"], "{}", r.serial());
    assert_eq!(r.ssh_ok("cat /etc/banner").unwrap().trim(), "firmware B");
    r.power_off(Duration::from_secs(30)).unwrap();
    let flash = std::fs::read(disk.path()).unwrap();
    assert!(
        flash[..firmware_b.len()] == firmware_b,
        "the firmware partition does not hold firmware B"
    );
    let persist = bed.layout.firmware as usize;
    assert!(
        flash[persist..persist + data.len()] == data,
        "persist does not hold what update.sh applied there"
    );
}

/// A board whose image goes to a partition nothing mounts: `persist` as image `data`. The
/// running firmware's board.toml is covered by this one (a bind mount), and `update.sh
/// --no-reboot` with a bundle of `data` streams it into `apply` on the running system.
fn free_target_is_applied_from_the_running_system(bed: &NorBed, r: &Router, data: &[u8]) {
    let board = format!(
        "{}\n[[image]]\nname = \"data\"\ntarget = \"mtd:persist\"\n",
        liminix_tests::nor_bed::BOARD_TOML
    );
    let bundle = bed.bundle_for(&board, &[("data", data)], "data");
    r.ssh_with_input(
        "cat > /tmp/board.toml && mount --bind /tmp/board.toml /etc/liminix/board.toml",
        board.as_bytes(),
    )
    .unwrap();
    let out = bed.update_sh(r, &bundle, &["--json", "--no-reboot"]);
    assert!(out.status.success());
    let plan = events(&out, "image_plan");
    assert_eq!(plan[0]["levitate"], false, "{plan:?}");
    let done = events(&out, "done");
    assert_eq!(done[0]["images"][0]["target"], "mtd:persist", "{done:?}");
    assert_eq!(done[0]["rebooted"], false, "{done:?}");
    assert!(events(&out, "levitating").is_empty());
    r.ssh_ok("umount /etc/liminix/board.toml && cat /proc/1/comm")
        .unwrap();
}
