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

pub mod arm64;
pub mod assets;
pub mod net;
mod pflash;
pub mod ssh;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use pflash::{PflashBed, ENV_SIZE};

use crate::debian::{self, Arch};
use crate::initramfs::Initramfs;
use crate::qemu::{Launch, Stop};
use crate::{run_command, VmError};

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
    debian: debian::Assets,
    /// The static ARMv7 agent and its `ab_apply` example.
    agent: (PathBuf, PathBuf),
}

/// Modules the guest loads, in order (virtio and virtio_ring are built in).
const MODULES: &[&str] = &[
    "kernel/drivers/virtio/virtio_mmio.ko",
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/fs/fat/fat.ko",
    "kernel/fs/fat/vfat.ko",
    "kernel/fs/nls/nls_cp437.ko",
    "kernel/fs/nls/nls_ascii.ko",
];

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
    pub fn new(attempts: u8) -> Result<ArmBed, VmError> {
        let debian = debian::assets(Arch::Armhf)?;
        let agent = crate::build::armv7_agent_with_ab_apply()?;
        let tmp = std::env::temp_dir();
        let dir = tempfile::tempdir().map_err(VmError::io(&tmp))?;
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

    fn initrd(&self, variant: Variant, version: &str, attempts: u8) -> Result<PathBuf, VmError> {
        let mut fs = Initramfs::new();
        for d in ["/bin", "/proc", "/sys", "/dev", "/tmp", "/etc/liminix"] {
            fs.dir(d);
        }
        fs.copy(&self.debian.busybox, "/bin/busybox")?;
        fs.copy(&self.agent.0, "/bin/liminix-agent")?;
        fs.copy(&self.agent.1, "/bin/ab_apply")?;
        let mut order = String::new();
        for m in MODULES {
            let name = Path::new(m).file_name().unwrap().to_string_lossy();
            let host = self.debian.kernel.modules_dir.join(m);
            fs.copy(&host, &format!("/lib/modules/{name}"))?;
            order.push_str(&format!("{name}\n"));
        }
        fs.bytes("/lib/modules/order", order.as_bytes(), 0o644);
        fs.bytes("/version", version.as_bytes(), 0o644);
        fs.bytes("/etc/liminix/ab.json", ab_json(attempts).as_bytes(), 0o644);
        let fw_env = "/boot/uboot.env 0x0 0x4000\n";
        fs.bytes("/etc/fw_env.config", fw_env.as_bytes(), 0o644);
        let body = match variant {
            Variant::Good => INIT_GOOD,
            Variant::Bad => INIT_BAD,
        };
        fs.bytes("/init", format!("{INIT_HEAD}{body}").as_bytes(), 0o755);
        fs.symlink("/persist", "/boot/persist");
        let out = self.dir.path().join(format!("initrd-{version}.cpio"));
        fs.write(&out)?;
        Ok(out)
    }

    /// A slot image (FAT, the slot partition's size) with the kernel and an initramfs.
    pub fn slot_image(
        &self,
        variant: Variant,
        version: &str,
        attempts: u8,
    ) -> Result<SlotImage, VmError> {
        let initrd = self.initrd(variant, version, attempts)?;
        let path = self.dir.path().join(format!("slot-{version}.img"));
        let kib = PARTS[1].1 * SECTOR / 1024;
        assets::fat_image(
            &path,
            kib,
            &[("zImage", &self.debian.kernel.image), ("initrd", &initrd)],
        )?;
        let data = std::fs::read(&path).map_err(VmError::io(&path))?;
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
        Ok(SlotImage { path, sha256 })
    }

    fn layout(&mut self, attempts: u8) -> Result<(), VmError> {
        assets::uboot_bank(Path::new(assets::UBOOT_QEMU_ARM), &self.flash0)?;
        assets::env_bank(&self.flash1, &uboot_env())?;
        let end = PARTS[2].0 + PARTS[2].1;
        let f = std::fs::File::create(&self.disk).map_err(VmError::io(&self.disk))?;
        f.set_len(end * SECTOR).map_err(VmError::io(&self.disk))?;
        let table: String = std::iter::once("label: dos\n".to_string())
            .chain(
                PARTS
                    .iter()
                    .map(|(s, n)| format!("start={s}, size={n}, type=c\n")),
            )
            .collect();
        partition(&self.disk, &table)?;
        let dir = self.dir.path();
        let scr = dir.join("ab-boot.scr");
        let src = crate::workspace_root().join("bootloader-envs/uboot/ab-boot.txt");
        assets::script_image(&src, &scr)?;
        let vars = dir.join("uboot.env");
        self.ab_vars_file(&vars, "ab_boot=a\nab_try=none\nab_left=0\nab_failed=none\n")?;
        let boot = dir.join("boot.img");
        let kib = PARTS[0].1 * SECTOR / 1024;
        assets::fat_image(&boot, kib, &[("ab-boot.scr", &scr), ("uboot.env", &vars)])?;
        run_command(Command::new("mmd").arg("-i").arg(&boot).arg("::persist"))?;
        self.put_partition(0, &boot)?;
        let a = self.slot_image(Variant::Good, "a-1", attempts)?;
        self.put_partition(1, &a.path)
    }

    /// An A/B variables file (single-copy environment, as U-Boot's `env export -c`).
    fn ab_vars_file(&self, out: &Path, text: &str) -> Result<(), VmError> {
        assets::env_image(text, ENV_FILE_SIZE, out)
    }

    fn put_partition(&self, i: usize, img: &Path) -> Result<(), VmError> {
        let data = std::fs::read(img).map_err(VmError::io(img))?;
        assert!(data.len() as u64 <= PARTS[i].1 * SECTOR);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.disk)
            .map_err(VmError::io(&self.disk))?;
        std::os::unix::fs::FileExt::write_all_at(&f, &data, PARTS[i].0 * SECTOR)
            .map_err(VmError::io(&self.disk))
    }

    fn mtools_image(&self) -> String {
        format!("{}@@{}", self.disk.display(), PARTS[0].0 * SECTOR)
    }

    /// Copies a host file onto the boot partition as `name`.
    pub fn put_boot_file(&self, host: &Path, name: &str) -> Result<(), VmError> {
        run_command(
            Command::new("mcopy")
                .args(["-o", "-i", &self.mtools_image()])
                .arg(host)
                .arg(format!("::{name}")),
        )
        .map(drop)
    }

    /// The guest's instructions for the next boot (`sh /boot/step.sh`).
    pub fn set_step(&self, script: &str) -> Result<(), VmError> {
        let p = self.dir.path().join("step.sh");
        std::fs::write(&p, script).map_err(VmError::io(&p))?;
        self.put_boot_file(&p, "step.sh")
    }

    /// A file from the boot partition.
    pub fn boot_file(&self, name: &str) -> Result<Vec<u8>, VmError> {
        run_command(
            Command::new("mtype")
                .args(["-i", &self.mtools_image()])
                .arg(format!("::{name}")),
        )
    }

    /// Bytes of slot partition `slot` (0 = A, 1 = B).
    pub fn slot_bytes(&self, slot: usize) -> Result<Vec<u8>, VmError> {
        let (start, len) = PARTS[slot + 1];
        let f = std::fs::File::open(&self.disk).map_err(VmError::io(&self.disk))?;
        let mut buf = vec![0u8; (len * SECTOR) as usize];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, start * SECTOR)
            .map_err(VmError::io(&self.disk))?;
        Ok(buf)
    }

    /// One power-on until the guest powers off or resets; returns the serial console.
    pub fn boot(&self, timeout: Duration) -> Result<String, VmError> {
        self.power(timeout, None)
    }

    /// Like [`boot`](Self::boot), but the power is cut (SIGKILL to QEMU: no flush, no
    /// shutdown) `delay` after a console line containing `marker` appears.
    pub fn boot_cut(
        &self,
        timeout: Duration,
        marker: &str,
        delay: Duration,
    ) -> Result<String, VmError> {
        self.power(timeout, Some(Stop::after(marker, delay)))
    }

    fn power(&self, timeout: Duration, cut: Option<Stop>) -> Result<String, VmError> {
        let mut args = machine_args(&[&self.flash0, &self.flash1], 512);
        args.extend([
            "-drive".into(),
            format!("if=none,id=d0,format=raw,file={}", self.disk.display()),
        ]);
        args.extend(["-device".into(), "virtio-blk-device,drive=d0".into()]);
        let run = Launch {
            program: QEMU_ARM,
            package: QEMU_ARM_PACKAGE,
            args,
            stop: cut,
            timeout,
        }
        .run()?;
        if run.timed_out {
            return Err(VmError::Timeout {
                secs: timeout.as_secs(),
                serial: run.serial,
            });
        }
        Ok(run.serial)
    }
}

const QEMU_ARM: &str = "qemu-system-arm";
const QEMU_ARM_PACKAGE: &str = "qemu-system-arm";

/// `-M virt` under TCG with `memory_mb` of RAM, the serial console on stdout, no network,
/// and `pflash` as the two flash banks; no reboot: a reset ends the run.
fn machine_args(pflash: &[&Path; 2], memory_mb: u32) -> Vec<String> {
    let mut args: Vec<String> = ["-M", "virt", "-accel", "tcg", "-nographic", "-no-reboot"]
        .map(String::from)
        .to_vec();
    args.extend(["-m".into(), memory_mb.to_string()]);
    args.extend(["-nic", "none", "-monitor", "none", "-serial", "stdio"].map(String::from));
    for bank in pflash {
        args.push("-drive".into());
        args.push(format!("if=pflash,format=raw,file={}", bank.display()));
    }
    args
}

/// Writes a DOS partition table (sfdisk's input format) to `disk`.
fn partition(disk: &Path, table: &str) -> Result<(), VmError> {
    crate::require_program("sfdisk", "fdisk")?;
    let mut sf = Command::new("sfdisk")
        .arg("--quiet")
        .arg(disk)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(VmError::io(Path::new("sfdisk")))?;
    let mut stdin = sf.stdin.take().expect("piped stdin");
    std::io::Write::write_all(&mut stdin, table.as_bytes()).map_err(VmError::io(disk))?;
    drop(stdin);
    let status = sf.wait().map_err(VmError::io(disk))?;
    if !status.success() {
        return Err(VmError::Command {
            command: format!("sfdisk {}", disk.display()),
            detail: status.to_string(),
        });
    }
    Ok(())
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
