//! An ARM test bed with real U-Boot: `qemu-system-arm -M virt` (TCG) runs Debian's
//! qemu_arm U-Boot from the first pflash bank, with its environment in the second;
//! one virtio disk holds a FAT boot partition (the boot script, the A/B variables in
//! `uboot.env` as on CONFIG_ENV_IS_IN_FAT boards, staged images, the shared /persist)
//! and two slot partitions, each a FAT image with Debian's armmp zImage and an
//! initramfs (busybox, the static ARMv7 agent).
//!
//! Linux in this guest cannot drive the virt pflash, so the A/B variables live in the
//! FAT file both U-Boot (`env import -c`, `env export -c`, `fatwrite`) and the agent
//! (fw_env.config line `/boot/uboot.env 0x0 0x4000`) reach. Each [`ArmBed::boot`] is
//! one power-on of the machine until the guest powers off or reboots (`-no-reboot`),
//! i.e. a reset; the disk persists between boots.

mod assets;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use assets::cache_dir;
use assets::run;

/// Why the bed could not be prepared or run.
#[derive(Debug)]
pub struct ArmError(pub String);

impl std::fmt::Display for ArmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArmError {}

/// Sectors of the disk's partitions: boot FAT, slot A, slot B.
const PARTS: [(u64, u64); 3] = [(2048, 81920), (83968, 40960), (124928, 40960)];
const SECTOR: u64 = 512;
/// Size of the A/B variables file (fw_env.config env size).
pub const ENV_FILE_SIZE: usize = 0x4000;

/// What the guest's /init does, baked into an initramfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Mounts the boot partition and runs its `step.sh` (the test's instructions).
    Good,
    /// A system that never confirms its boot: it runs `step.sh` (which may panic the
    /// kernel) and powers off, never calling `mark-good`.
    Bad,
}

/// A slot image on the host: a FAT image for a slot partition, and its SHA-256.
#[derive(Debug, Clone)]
pub struct SlotImage {
    pub path: PathBuf,
    pub sha256: String,
}

/// The prepared machine: pflash banks and disk in a temporary directory.
pub struct ArmBed {
    dir: tempfile::TempDir,
    disk: PathBuf,
    flash0: PathBuf,
    flash1: PathBuf,
    debian: assets::Debian,
    agent: assets::Agent,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> ArmError + '_ {
    move |e| ArmError(format!("{what}: {e}"))
}

/// The guest's A/B description: slots are the disk's partitions 2 and 3.
fn ab_json(attempts: u8) -> String {
    let slot = |p: &str| {
        format!(
            r#"{{"kernel":{{"kind":"block","path":"{p}"}},"kernel_max":{}}}"#,
            PARTS[1].1 * SECTOR
        )
    };
    format!(
        r#"{{"board":"qemu-arm-ab","slots":[{},{}],"flow":{{"kind":"uboot-env","config":"/etc/fw_env.config","attempts":{attempts}}},"health":{{"command":"grep -q liminix.slot= /proc/cmdline","deadline_secs":30}}}}"#,
        slot("/dev/vda2"),
        slot("/dev/vda3")
    )
}

const INIT_HEAD: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m 2>/dev/null; done
"#;

const INIT_GOOD: &str = r#"i=0
while [ ! -b /dev/vda1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /boot
mount -t vfat /dev/vda1 /boot
echo "AB-GUEST version=$(cat /version) cmdline=$(cat /proc/cmdline)"
if [ -f /boot/step.sh ]; then sh /boot/step.sh 2>&1; fi
echo "AB-GUEST step done"
sync
umount /boot
poweroff -f
"#;

const INIT_BAD: &str = r#"i=0
while [ ! -b /dev/vda1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /boot
mount -t vfat -o ro /dev/vda1 /boot
echo "AB-GUEST version=$(cat /version): never confirms"
if [ -f /boot/step.sh ]; then sh /boot/step.sh 2>&1; fi
poweroff -f
"#;

impl ArmBed {
    /// Fetches and builds everything, and lays out slot A with a good system.
    pub fn new(attempts: u8) -> Result<ArmBed, ArmError> {
        let debian = assets::debian()?;
        let agent = assets::agent()?;
        let dir = tempfile::tempdir().map_err(io("tempdir"))?;
        let mut bed = ArmBed {
            disk: dir.path().join("disk.img"),
            flash0: dir.path().join("flash0.img"),
            flash1: dir.path().join("flash1.img"),
            dir,
            debian,
            agent,
        };
        bed.layout(attempts)?;
        Ok(bed)
    }

    fn initrd(&self, variant: Variant, version: &str, attempts: u8) -> Result<PathBuf, ArmError> {
        let stage = self.dir.path().join(format!("initrd-{version}"));
        let mk = |p: &str| std::fs::create_dir_all(stage.join(p)).map_err(io("mkdir"));
        for d in [
            "bin",
            "proc",
            "sys",
            "dev",
            "tmp",
            "etc/liminix",
            "lib/modules",
        ] {
            mk(d)?;
        }
        let copy = |from: &Path, to: &str| {
            std::fs::copy(from, stage.join(to))
                .map(|_| ())
                .map_err(io("copy into initrd"))
        };
        copy(&self.debian.busybox, "bin/busybox")?;
        copy(&self.agent.agent, "bin/liminix-agent")?;
        copy(&self.agent.ab_apply, "bin/ab_apply")?;
        let mut order = String::new();
        for m in assets::MODULES {
            let name = Path::new(m).file_name().unwrap().to_string_lossy();
            copy(&self.debian.modules.join(m), &format!("lib/modules/{name}"))?;
            order.push_str(&format!("{name}\n"));
        }
        let write = |p: &str, s: &str| std::fs::write(stage.join(p), s).map_err(io("write"));
        write("lib/modules/order", &order)?;
        write("version", version)?;
        write("etc/liminix/ab.json", &ab_json(attempts))?;
        write("etc/fw_env.config", "/boot/uboot.env 0x0 0x4000\n")?;
        let body = match variant {
            Variant::Good => INIT_GOOD,
            Variant::Bad => INIT_BAD,
        };
        write("init", &format!("{INIT_HEAD}{body}"))?;
        std::os::unix::fs::symlink("/boot/persist", stage.join("persist")).map_err(io("ln"))?;
        run(Command::new("chmod").args(["0755"]).arg(stage.join("init")))?;
        let out = self.dir.path().join(format!("initrd-{version}.cpio"));
        std::fs::write(&out, assets::cpio_of(&stage)?).map_err(io("initrd"))?;
        Ok(out)
    }

    /// A slot image (FAT, the slot partition's size) with the kernel and an initramfs.
    pub fn slot_image(
        &self,
        variant: Variant,
        version: &str,
        attempts: u8,
    ) -> Result<SlotImage, ArmError> {
        let initrd = self.initrd(variant, version, attempts)?;
        let path = self.dir.path().join(format!("slot-{version}.img"));
        let kib = PARTS[1].1 * SECTOR / 1024;
        assets::fat_image(
            &path,
            kib,
            &[("zImage", &self.debian.zimage), ("initrd", &initrd)],
        )?;
        let data = std::fs::read(&path).map_err(io("slot image"))?;
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
        Ok(SlotImage { path, sha256 })
    }

    fn layout(&mut self, attempts: u8) -> Result<(), ArmError> {
        assets::uboot_bank(&self.flash0)?;
        assets::env_bank(&self.flash1, &uboot_env())?;
        let end = PARTS[2].0 + PARTS[2].1;
        let f = std::fs::File::create(&self.disk).map_err(io("disk"))?;
        f.set_len(end * SECTOR).map_err(io("disk"))?;
        let table: String = std::iter::once("label: dos\n".to_string())
            .chain(
                PARTS
                    .iter()
                    .map(|(s, n)| format!("start={s}, size={n}, type=c\n")),
            )
            .collect();
        let mut sf = Command::new("sfdisk")
            .arg("--quiet")
            .arg(&self.disk)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(io("sfdisk"))?;
        std::io::Write::write_all(&mut sf.stdin.take().unwrap(), table.as_bytes())
            .map_err(io("sfdisk"))?;
        if !sf.wait().map_err(io("sfdisk"))?.success() {
            return Err(ArmError("sfdisk failed".into()));
        }
        let dir = self.dir.path();
        let scr = dir.join("ab-boot.scr");
        let src = assets::workspace_root().join("bootloader-envs/uboot/ab-boot.txt");
        assets::script_image(&src, &scr)?;
        let vars = dir.join("uboot.env");
        self.ab_vars_file(&vars, "ab_boot=a\nab_try=none\nab_left=0\nab_failed=none\n")?;
        let boot = dir.join("boot.img");
        let kib = PARTS[0].1 * SECTOR / 1024;
        assets::fat_image(&boot, kib, &[("ab-boot.scr", &scr), ("uboot.env", &vars)])?;
        run(Command::new("mmd").arg("-i").arg(&boot).arg("::persist"))?;
        self.put_partition(0, &boot)?;
        let a = self.slot_image(Variant::Good, "a-1", attempts)?;
        self.put_partition(1, &a.path)
    }

    /// An A/B variables file (single-copy environment, as U-Boot's `env export -c`).
    fn ab_vars_file(&self, out: &Path, text: &str) -> Result<(), ArmError> {
        let txt = out.with_extension("txt");
        std::fs::write(&txt, text).map_err(io("vars"))?;
        run(Command::new("mkenvimage")
            .args(["-s", &format!("{ENV_FILE_SIZE:#x}"), "-o"])
            .arg(out)
            .arg(&txt))
        .map(|_| ())
    }

    fn put_partition(&self, i: usize, img: &Path) -> Result<(), ArmError> {
        let data = std::fs::read(img).map_err(io("partition image"))?;
        assert!(data.len() as u64 <= PARTS[i].1 * SECTOR);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.disk)
            .map_err(io("disk"))?;
        std::os::unix::fs::FileExt::write_all_at(&f, &data, PARTS[i].0 * SECTOR).map_err(io("disk"))
    }

    fn mtools_image(&self) -> String {
        format!("{}@@{}", self.disk.display(), PARTS[0].0 * SECTOR)
    }

    /// Copies a host file onto the boot partition as `name`.
    pub fn put_boot_file(&self, host: &Path, name: &str) -> Result<(), ArmError> {
        run(Command::new("mcopy")
            .args(["-o", "-i", &self.mtools_image()])
            .arg(host)
            .arg(format!("::{name}")))
        .map(|_| ())
    }

    /// The guest's instructions for the next boot (`sh /boot/step.sh`).
    pub fn set_step(&self, script: &str) -> Result<(), ArmError> {
        let p = self.dir.path().join("step.sh");
        std::fs::write(&p, script).map_err(io("step"))?;
        self.put_boot_file(&p, "step.sh")
    }

    /// A file from the boot partition.
    pub fn boot_file(&self, name: &str) -> Result<Vec<u8>, ArmError> {
        run(Command::new("mtype")
            .args(["-i", &self.mtools_image()])
            .arg(format!("::{name}")))
    }

    /// Bytes of slot partition `slot` (0 = A, 1 = B).
    pub fn slot_bytes(&self, slot: usize) -> Result<Vec<u8>, ArmError> {
        let (start, len) = PARTS[slot + 1];
        let f = std::fs::File::open(&self.disk).map_err(io("disk"))?;
        let mut buf = vec![0u8; (len * SECTOR) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, start * SECTOR)
            .map_err(io("disk"))?;
        Ok(buf)
    }

    /// One power-on until the guest powers off or resets; returns the serial console.
    pub fn boot(&self, timeout: Duration) -> Result<String, ArmError> {
        self.power(timeout, None)
    }

    /// Like [`boot`](Self::boot), but the power is cut (SIGKILL to QEMU: no flush, no
    /// shutdown) `delay` after a console line containing `marker` appears.
    pub fn boot_cut(
        &self,
        timeout: Duration,
        marker: &str,
        delay: Duration,
    ) -> Result<String, ArmError> {
        self.power(timeout, Some((marker, delay)))
    }

    fn power(&self, timeout: Duration, cut: Option<(&str, Duration)>) -> Result<String, ArmError> {
        let mut child = Command::new("qemu-system-arm")
            .args(["-M", "virt", "-accel", "tcg", "-m", "512", "-nographic"])
            .args([
                "-no-reboot",
                "-nic",
                "none",
                "-monitor",
                "none",
                "-serial",
                "stdio",
            ])
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,file={}",
                self.flash0.display()
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,file={}",
                self.flash1.display()
            ))
            .arg("-drive")
            .arg(format!(
                "if=none,id=d0,format=raw,file={}",
                self.disk.display()
            ))
            .args(["-device", "virtio-blk-device,drive=d0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("qemu-system-arm"))?;
        let (tx, rx) = mpsc::channel();
        let mut out = child.stdout.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let start = Instant::now();
        let mut raw = Vec::new();
        let mut timed_out = false;
        let mut cut_at: Option<Instant> = None;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(c) => raw.extend_from_slice(&c),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let (Some((marker, delay)), None) = (cut, cut_at) {
                let text = String::from_utf8_lossy(&raw);
                if text.lines().any(|l| l.contains(marker)) {
                    cut_at = Some(Instant::now() + delay);
                }
            }
            if cut_at.is_some_and(|t| Instant::now() >= t) {
                let _ = child.kill();
                break;
            }
            if start.elapsed() > timeout {
                timed_out = true;
                let _ = child.kill();
                break;
            }
        }
        let _ = child.wait();
        let _ = reader.join();
        raw.extend(rx.try_iter().flatten());
        let serial = String::from_utf8_lossy(&raw).replace('\r', "");
        if timed_out {
            return Err(ArmError(format!("guest timed out; console:\n{serial}")));
        }
        Ok(serial)
    }
}

/// U-Boot's environment in pflash: addresses, the board hooks `ab-boot.txt` calls, and
/// a bootcmd that sources the script from the boot partition.
fn uboot_env() -> String {
    let vars = "ab_boot ab_try ab_left ab_failed";
    let slot = |p: u32| {
        format!(
            "fatload virtio 0:{p} ${{kernel_addr_r}} zImage && \
             fatload virtio 0:{p} ${{ramdisk_addr_r}} initrd && \
             bootz ${{kernel_addr_r}} ${{ramdisk_addr_r}}:${{filesize}} ${{fdt_addr}}"
        )
    };
    [
        "bootdelay=0".to_string(),
        "scriptaddr=0x40200000".into(),
        "kernel_addr_r=0x40400000".into(),
        "ramdisk_addr_r=0x44000000".into(),
        "fdt_addr=0x40000000".into(),
        "ab_envaddr=0x43f00000".into(),
        "bootcmd=virtio scan; fatload virtio 0:1 ${scriptaddr} ab-boot.scr && source ${scriptaddr}"
            .into(),
        format!(
            "ab_import=fatload virtio 0:1 ${{ab_envaddr}} uboot.env && env import -c ${{ab_envaddr}} {ENV_FILE_SIZE:#x} {vars}"
        ),
        format!(
            "ab_save=env export -c -s {ENV_FILE_SIZE:#x} ${{ab_envaddr}} {vars} && fatwrite virtio 0:1 ${{ab_envaddr}} uboot.env {ENV_FILE_SIZE:#x}"
        ),
        "ab_bootargs=console=ttyAMA0 panic=-1 quiet".into(),
        format!("ab_boot_a={}", slot(2)),
        format!("ab_boot_b={}", slot(3)),
    ]
    .join("\n")
        + "\n"
}
