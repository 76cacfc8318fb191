//! Try-boot before flash on the NOR router guest (liminix_vm::router), and `levitate --kexec`
//! there: the host's real kernel in QEMU (TCG), the firmware's root a squashfs inside the
//! `firmware` partition of a block2mtd flash disk, bundles packed and signed on the host by
//! the packer, the static agent in the firmware.
//!
//! Oracles: the serial console's boot banners (which firmware runs) and the kernel's own
//! panic line; the flash disk read back on the host, byte for byte, while the guest runs
//! (written through, no cache) and after it powered off; the host's OpenSSH client with
//! StrictHostKeyChecking against the one host key baked into the images; the kernel's
//! command line in the trial; the guest kernel's ramoops record, read back by the agent.
//!
//! Guests run one at a time (a lock): the machine's two cores are shared.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use liminix_build_tools::image::squashfs::{self, Compression, SquashfsSpec};
use liminix_build_tools::images::ImageInput;
use liminix_build_tools::liminix_boards;
use liminix_build_tools::pack::{write_bundle, PackOptions};
use liminix_bundle::SecretKey;
use liminix_vm::kernel::{find_kernel, Kernel};
use liminix_vm::router::{flash, trial, Keys, Layout, RootTree, Router};
use liminix_vm::{build_static, Disk, StaticTarget};
use sha2::{Digest, Sha256};

/// Generous: on a 2-core machine shared with other builds one boot took up to 75 s.
const BOOT: Duration = Duration::from_secs(240);
const SSH: Duration = Duration::from_secs(60);
const EPOCH: u64 = 1_700_000_000;

/// A firmware whose /init prints its banner and exits: PID 1 ends, the kernel panics (a
/// real panic: "Attempted to kill init"), `panic=1` resets the machine.
const PANICKING_INIT: &str = "#!/bin/sh\n\
echo \"LIMINIX-ROUTER-BOOT $(cat /etc/banner)\"\n\
echo 'this firmware is broken: its init exits at once'\n\
exit 1\n";

fn one_guest_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

struct Bed {
    keys: Keys,
    agent: PathBuf,
    kernel: Kernel,
    uimage: Vec<u8>,
    layout: Layout,
    signer: SecretKey,
    dir: tempfile::TempDir,
}

impl Bed {
    fn get() -> &'static Bed {
        static B: OnceLock<Bed> = OnceLock::new();
        B.get_or_init(|| {
            let kernel = find_kernel().unwrap();
            Bed {
                keys: Keys::generate().unwrap(),
                agent: build_static("liminix-agent", StaticTarget::Bin("liminix-agent")).unwrap(),
                uimage: flash::kernel_uimage(&kernel, "liminix-router").unwrap(),
                kernel,
                layout: Layout::default(),
                signer: SecretKey::generate(),
                dir: tempfile::tempdir().unwrap(),
            }
        })
    }

    /// `firmware.bin` whose root says `banner`, able to run from RAM after a kexec; with
    /// `init`, that is its /init.
    fn firmware(&self, banner: &str, init: Option<&str>) -> Vec<u8> {
        let tree = RootTree::build(banner, &self.keys, &self.agent).unwrap();
        let trusted = self.signer.public().to_file_text();
        trial::add_support(&tree, &self.kernel, &self.layout, &trusted).unwrap();
        if let Some(script) = init {
            tree.file("/init", script.as_bytes(), 0o755).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("rootfs.squashfs");
        let spec = SquashfsSpec {
            compression: Compression::Gzip,
            epoch: EPOCH,
            block_size: None,
        };
        squashfs::write(tree.path(), &spec, &out).unwrap();
        let root = std::fs::read(&out).unwrap();
        flash::firmware(&self.uimage, &root, &self.layout).unwrap()
    }

    /// A bundle for the router's board holding `firmware`, signed by the trusted key.
    fn bundle(&self, name: &str, firmware: &[u8]) -> Vec<u8> {
        let file = self.dir.path().join(format!("{name}.bin"));
        std::fs::write(&file, firmware).unwrap();
        let def = liminix_boards::parse(&trial::board_toml(&self.layout), "test").unwrap();
        let images = [ImageInput {
            name: "firmware".into(),
            file,
            base: None,
        }];
        let opts = PackOptions {
            store_root: Path::new("/nonexistent"),
            toplevel: None,
            board: trial::BOARD,
            epoch: 1,
            build_time: 1,
            level: 3,
            images: &images,
            board_def: Some(&def),
            raw_images: false,
        };
        let out = self.dir.path().join(format!("{name}.bundle"));
        write_bundle(&opts, &self.signer, &out, &|_, _| {}).unwrap();
        std::fs::read(&out).unwrap()
    }

    fn disk_with(&self, tag: &str, firmware: &[u8]) -> Disk {
        let disk = Disk::new(tag, self.layout.flash_bytes());
        flash::write_disk(disk.path(), &self.layout, firmware).unwrap();
        disk
    }
}

/// Waits for the `n`th boot banner and for ssh; prints the times.
fn up(r: &mut Router, n: usize) {
    let banner = r.wait_for_boot(n, BOOT).unwrap();
    let ssh = r.wait_for_ssh(SSH).unwrap();
    eprintln!(
        "boot {n}: banner {:.1} s after QEMU started, ssh {:.1} s later",
        banner.as_secs_f64(),
        ssh.as_secs_f64()
    );
}

/// The firmware partition as the host reads the disk now.
fn flash_holds(disk: &Path, firmware: &[u8]) -> bool {
    let flash = std::fs::read(disk).unwrap();
    flash[..firmware.len()] == *firmware
}

/// Sends `bundle` and starts `apply --try` detached from the ssh session, which the kexec ends;
/// returns once the trial's /init started (a refusal on the console fails at once).
fn try_bundle(r: &Router, bundle: &[u8]) {
    r.ssh_with_input("cat > /tmp/try.bundle", bundle).unwrap();
    let mark = r.serial().len();
    r.ssh_ok("setsid liminix-agent apply --try /tmp/try.bundle </dev/null >/dev/console 2>&1 &")
        .unwrap();
    console_shows(r, mark, "liminix-trial: started", "liminix-agent: error");
}

/// Waits until the console after `mark` shows `good`; fails when it shows `bad` first.
fn console_shows(r: &Router, mark: usize, good: &str, bad: &str) {
    let start = std::time::Instant::now();
    loop {
        let serial = r.serial();
        let new = serial.get(mark..).unwrap_or_default();
        assert!(!new.contains(bad), "{new}");
        if new.contains(good) {
            return;
        }
        assert!(start.elapsed() < BOOT, "no {good:?} on the console:\n{new}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn id_of(firmware: &[u8]) -> String {
    hex::encode(Sha256::digest(firmware))[..16].to_string()
}

/// One guest, two trials. A good image B: `apply --try` boots it from RAM (flash still A),
/// `mark-good` there writes it, the next boot runs B from the flash. Then an image C whose
/// init exits: the trial kernel panics, the reset boots B from the untouched flash, and
/// `status` there reports the failed trial from the kernel's ramoops record.
#[test]
fn a_good_trial_is_flashed_by_mark_good_and_a_panicking_one_leaves_the_flash_alone() {
    let _g = one_guest_at_a_time();
    let bed = Bed::get();
    let fw_a = bed.firmware("firmware A", None);
    let fw_b = bed.firmware("firmware B", None);
    let fw_c = bed.firmware("firmware C", Some(PANICKING_INIT));
    let disk = bed.disk_with("router-try", &fw_a);
    let mut r = Router::boot_with_pstore(disk.path(), &bed.layout, &bed.keys).unwrap();
    up(&mut r, 1);

    try_bundle(&r, &bed.bundle("b", &fw_b));
    up(&mut r, 2);
    assert_eq!(r.banners(), ["firmware A", "firmware B"], "{}", r.serial());
    let cmdline = r.ssh_ok("cat /proc/cmdline").unwrap();
    let marker = format!("liminix.trial={}", id_of(&fw_b));
    assert!(cmdline.contains(&marker), "{cmdline}");
    let mounts = r.ssh_ok("cat /proc/mounts").unwrap();
    let root = mounts.lines().find(|l| l.split(' ').nth(1) == Some("/"));
    assert!(root.is_some_and(|l| l.starts_with("/dev/loop")), "{mounts}");
    assert!(flash_holds(disk.path(), &fw_a), "the trial wrote the flash");

    let out = r.ssh("liminix-agent mark-good").unwrap();
    eprintln!("mark-good: {}{}", out.stdout, out.stderr);
    assert!(out.success(), "{out:?}");
    assert!(out.stderr.contains("confirmed"), "{out:?}");
    assert!(flash_holds(disk.path(), &fw_b), "mark-good did not write B");
    let _ = r.ssh("reboot");
    up(&mut r, 3);
    assert_eq!(
        r.banners(),
        ["firmware A", "firmware B", "firmware B"],
        "{}",
        r.serial()
    );
    assert!(!r
        .ssh_ok("cat /proc/cmdline")
        .unwrap()
        .contains("liminix.trial"));

    let mark = r.serial().len();
    try_bundle(&r, &bed.bundle("c", &fw_c));
    up(&mut r, 5);
    let serial = r.serial();
    assert_eq!(
        r.banners(),
        [
            "firmware A",
            "firmware B",
            "firmware B",
            "firmware C",
            "firmware B"
        ],
        "{serial}"
    );
    assert!(
        serial[mark..].contains("Kernel panic - not syncing: Attempted to kill init"),
        "{serial}"
    );
    assert!(
        flash_holds(disk.path(), &fw_b),
        "the failed trial changed the flash"
    );
    let log = r.ssh_ok("liminix-agent boot-log").unwrap();
    eprintln!("boot-log after the failed trial:\n{log}");
    let status = r.ssh_ok("liminix-agent status --json").unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let failed = v["previous_boot"]["failed_trial"]
        .as_str()
        .unwrap_or_default();
    let want = format!("trial of firmware@{} failed: panic", id_of(&fw_c));
    assert!(failed.starts_with(&want), "{status}");
    let text = r.ssh_ok("liminix-agent status").unwrap();
    assert!(text.contains(&want), "{text}");
    r.power_off(Duration::from_secs(30)).unwrap();
    assert!(flash_holds(disk.path(), &fw_b));
}

/// `levitate --kexec` on the router: the running kernel (the uImage at the start of the
/// firmware partition, no /boot on a router) boots the maintenance root with the modules the
/// running system had loaded and the board's flash set-up; ssh answers with the same host
/// key; `flashcp` writes firmware B; `reboot` boots B from the flash.
#[test]
fn levitate_kexec_then_flashcp_then_reboot_boots_firmware_b() {
    let _g = one_guest_at_a_time();
    let bed = Bed::get();
    let fw_a = bed.firmware("firmware A", None);
    let fw_b = bed.firmware("firmware B", None);
    let disk = bed.disk_with("router-kexec", &fw_a);
    let mut r = Router::boot(disk.path(), &bed.layout, &bed.keys).unwrap();
    up(&mut r, 1);
    let mark = r.serial().len();
    r.ssh_ok("setsid liminix-agent levitate --kexec </dev/null >/dev/console 2>&1 &")
        .unwrap();
    console_shows(&r, mark, "module(s) carried", "liminix-agent: error");
    let ready = r
        .wait_for_console("maintenance: ready", mark, BOOT)
        .unwrap();
    let ssh = r.wait_for_ssh(SSH).unwrap();
    eprintln!(
        "levitate --kexec: maintenance ready after {:.1} s, ssh {:.1} s later",
        ready.as_secs_f64(),
        ssh.as_secs_f64()
    );
    let serial = r.serial();
    assert!(
        serial[mark..].contains("module(s) carried"),
        "{}",
        &serial[mark..]
    );
    let banner = r.ssh_ok("cat /etc/banner").unwrap();
    assert!(banner.contains("MAINTENANCE MODE"), "{banner}");
    let mtd = r.ssh_ok("cat /proc/mtd").unwrap();
    assert!(mtd.contains("\"firmware\""), "{mtd}");
    r.ssh_with_input("cat > /tmp/firmware-B.bin", &fw_b)
        .unwrap();
    let out = r
        .ssh_ok("flashcp -v /tmp/firmware-B.bin mtd:firmware 2>&1")
        .unwrap();
    eprintln!("{out}");
    let _ = r.ssh("reboot");
    up(&mut r, 2);
    assert_eq!(r.banners(), ["firmware A", "firmware B"], "{}", r.serial());
    r.power_off(Duration::from_secs(30)).unwrap();
    assert!(flash_holds(disk.path(), &fw_b));
}
