//! Real U-Boot on `qemu-system-arm -M virt` (TCG) with a network: a virtio-net device on
//! QEMU's user-mode network, whose built-in TFTP server serves a host directory. U-Boot gets
//! its address by DHCP and fetches from 10.0.2.2. The environment is written into the second
//! pflash bank before each boot; the rest of that bank is CFI flash U-Boot can erase and
//! program, and the host reads it back after the run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::arm64::UBOOT_QEMU_ARM64;
use super::assets::{self, UBOOT_QEMU_ARM};
use super::{machine_args, QEMU_ARM, QEMU_ARM_PACKAGE};
use crate::qemu::{Launch, Run, Stop};
use crate::{run_command, VmError};

/// Where the virt machine maps the second pflash bank (U-Boot's environment at its start).
pub const BANK1_ADDRESS: u64 = 0x0400_0000;
/// QEMU's sector length for the virt pflash banks (U-Boot, which sees one 16-bit device of
/// 32 MiB per bank, reports 128 KiB sectors).
pub const FLASH_SECTOR: u64 = 0x4_0000;
/// Guest RAM: enough for U-Boot at the top and the kernels, files and initramfs below.
const MEMORY_MB: u32 = 512;

/// Which virt machine: 32-bit ARM (qemu_arm U-Boot) or arm64 (qemu_arm64 U-Boot, Cortex-A57).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cpu {
    Arm,
    Arm64,
}

impl Cpu {
    fn program(self) -> &'static str {
        match self {
            Cpu::Arm => QEMU_ARM,
            Cpu::Arm64 => "qemu-system-aarch64",
        }
    }

    fn uboot(self) -> &'static str {
        match self {
            Cpu::Arm => UBOOT_QEMU_ARM,
            Cpu::Arm64 => UBOOT_QEMU_ARM64,
        }
    }
}

/// The machine, its TFTP directory and its two flash banks.
pub struct NetBed {
    cpu: Cpu,
    dir: tempfile::TempDir,
    flash0: PathBuf,
    flash1: PathBuf,
    tftp: PathBuf,
    disk: Option<PathBuf>,
}

impl NetBed {
    /// The 32-bit ARM machine.
    pub fn new() -> Result<NetBed, VmError> {
        Self::with_cpu(Cpu::Arm)
    }

    pub fn with_cpu(cpu: Cpu) -> Result<NetBed, VmError> {
        crate::require_program(cpu.program(), QEMU_ARM_PACKAGE)?;
        let tmp = std::env::temp_dir();
        let dir = tempfile::tempdir().map_err(VmError::io(&tmp))?;
        let flash0 = dir.path().join("u-boot.img");
        assets::uboot_bank(Path::new(cpu.uboot()), &flash0)?;
        let tftp = dir.path().join("tftp");
        std::fs::create_dir(&tftp).map_err(VmError::io(&tftp))?;
        let flash1 = dir.path().join("flash1.img");
        // erased NOR until an environment is set
        std::fs::write(&flash1, vec![0xFFu8; assets::BANK as usize])
            .map_err(VmError::io(&flash1))?;
        Ok(NetBed {
            cpu,
            flash1,
            dir,
            flash0,
            tftp,
            disk: None,
        })
    }

    /// The directory QEMU's TFTP server serves.
    pub fn tftp_dir(&self) -> &Path {
        &self.tftp
    }

    /// A scratch directory that lives as long as the bed.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The second pflash bank's file: the environment, then flash the tests write.
    pub fn bank1(&self) -> &Path {
        &self.flash1
    }

    /// Writes the second bank afresh: the environment from `name=value` lines, the rest erased.
    pub fn set_env(&self, text: &str) -> Result<(), VmError> {
        assets::env_bank(&self.flash1, text)
    }

    /// A raw disk image on a virtio-blk device, U-Boot's `virtio 0`, from the next boot on.
    pub fn attach_disk(&mut self, image: &Path) {
        self.disk = Some(image.to_owned());
    }

    fn args(&self) -> Vec<String> {
        let mut args = machine_args(&[&self.flash0, &self.flash1], MEMORY_MB);
        if self.cpu == Cpu::Arm64 {
            args.extend(["-cpu".into(), "cortex-a57".into()]);
        }
        if let Some(i) = args.iter().position(|a| a == "-nic") {
            args.drain(i..i + 2);
        }
        args.push("-netdev".into());
        args.push(format!("user,id=n,tftp={}", self.tftp.display()));
        args.extend(["-device".into(), "virtio-net-device,netdev=n".into()]);
        if let Some(disk) = &self.disk {
            args.push("-drive".into());
            args.push(format!("if=none,id=d0,format=raw,file={}", disk.display()));
            args.extend(["-device".into(), "virtio-blk-device,drive=d0".into()]);
        }
        args
    }

    /// The device tree QEMU gives this machine (`-machine dumpdtb`), the one a board DTB
    /// stands for in these boots.
    pub fn dump_dtb(&self) -> Result<Vec<u8>, VmError> {
        let out = self.dir.path().join("virt.dtb");
        run_command(
            Command::new(self.cpu.program())
                .args(self.args())
                .arg("-machine")
                .arg(format!("dumpdtb={}", out.display())),
        )?;
        std::fs::read(&out).map_err(VmError::io(&out))
    }

    /// One power-on until a console line holds `until` (then QEMU is stopped), the guest
    /// powers off, or `timeout` passes (an error carrying the console).
    pub fn boot(&self, until: &str, timeout: Duration) -> Result<Run, VmError> {
        let run = Launch {
            program: self.cpu.program(),
            package: QEMU_ARM_PACKAGE,
            args: self.args(),
            stop: Some(Stop::at_line(until)),
            timeout,
        }
        .run()?;
        if run.timed_out {
            return Err(VmError::Timeout {
                secs: timeout.as_secs(),
                serial: run.serial,
            });
        }
        Ok(run)
    }
}
