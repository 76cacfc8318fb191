//! The bed of `omnia_stick_vm`: the disks ([`disks`]) and the machine that boots them,
//! powered on and cut off as a router is.

pub mod disks;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use liminix_tests::lab::text;
use liminix_vm::arm::assets;
use liminix_vm::qemu::{Launch, Run};
use liminix_vm::VmError;

pub const ENV_SIZE: usize = 0x4000;

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    out
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// qemu_arm U-Boot 2023.01 built from Debian's source with btrfs support (the Omnia's
/// U-Boot reads its eMMC btrfs), by `bootloader-envs/uboot/build-qemu-arm.sh btrfs`;
/// cached across runs.
pub fn btrfs_uboot() -> PathBuf {
    let out = liminix_vm::cache_dir("u-boot-btrfs");
    let script = liminix_vm::workspace_root().join("bootloader-envs/uboot/build-qemu-arm.sh");
    let start = Instant::now();
    run(Command::new("bash").arg(&script).arg("btrfs").arg(&out));
    eprintln!("btrfs U-Boot ready after {:?}", start.elapsed());
    out.join("u-boot.bin")
}

/// U-Boot's own default environment, read from the binary (NUL-separated `name=value`
/// strings starting at its `bootcmd`), with `bootcmd` importing `boot_targets` first.
pub fn uboot_env(uboot: &Path) -> String {
    let bin = std::fs::read(uboot).unwrap();
    let needle = b"bootcmd=run distro_bootcmd\0";
    let start = bin
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the default environment in u-boot.bin");
    let end = start + bin[start..].windows(2).position(|w| w == b"\0\0").unwrap();
    let mut lines: Vec<String> = bin[start..end]
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .filter(|l| !l.starts_with("bootcmd=") && !l.starts_with("bootdelay="))
        .collect();
    lines.push("bootdelay=0".into());
    lines.push(format!(
        "bootcmd=virtio scan; if fatload virtio 0:2 ${{loadaddr}} uboot.env; then env import -c ${{loadaddr}} {ENV_SIZE:#x} boot_targets; fi; echo boot_targets=${{boot_targets}}; run distro_bootcmd"
    ));
    lines.join("\n") + "\n"
}

/// The router: U-Boot in pflash, the eMMC, the stick when it is plugged in, the LAN.
pub struct Machine {
    pub dir: PathBuf,
    pub emmc: PathBuf,
    pub stick: PathBuf,
    pub port: u16,
    flash0: PathBuf,
    flash1: PathBuf,
}

/// One power-on: QEMU running in a thread until it powers off or is cut.
pub struct PowerOn {
    guest: JoinHandle<Result<Run, VmError>>,
    pidfile: PathBuf,
    pub start: Instant,
}

impl Machine {
    pub fn new(dir: &Path, uboot: &Path, emmc: PathBuf, stick: PathBuf, port: u16) -> Self {
        let flash0 = dir.join("flash0.img");
        let flash1 = dir.join("flash1.img");
        assets::uboot_bank(uboot, &flash0).unwrap();
        assets::env_bank(&flash1, &uboot_env(uboot)).unwrap();
        Machine {
            dir: dir.to_owned(),
            emmc,
            stick,
            port,
            flash0,
            flash1,
        }
    }

    fn args(&self, with_stick: bool, pidfile: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "-M",
            "virt",
            "-accel",
            "tcg",
            "-m",
            "512",
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-device",
            "usb-ehci",
        ]
        .map(String::from)
        .to_vec();
        let mut add = |a: &str, b: String| args.extend([a.to_string(), b]);
        add("-pidfile", pidfile.display().to_string());
        for bank in [&self.flash0, &self.flash1] {
            add(
                "-drive",
                format!("if=pflash,format=raw,file={}", bank.display()),
            );
        }
        if with_stick {
            let f = self.stick.display();
            add("-drive", format!("if=none,id=stick,format=raw,file={f}"));
            add("-device", "usb-storage,drive=stick".into());
        }
        let e = self.emmc.display();
        add("-drive", format!("if=none,id=emmc,format=raw,file={e}"));
        add("-device", "virtio-blk-device,drive=emmc".into());
        let fwd = format!("user,id=n,hostfwd=tcp:127.0.0.1:{}-:22", self.port);
        add("-netdev", fwd);
        add("-device", "virtio-net-device,netdev=n".into());
        args
    }

    /// Powers the machine on, with or without the stick plugged in.
    pub fn power_on(&self, with_stick: bool) -> PowerOn {
        let pidfile = self.dir.join("qemu.pid");
        let _ = std::fs::remove_file(&pidfile);
        let launch = Launch {
            program: "qemu-system-arm",
            package: "qemu-system-arm",
            args: self.args(with_stick, &pidfile),
            stop: None,
            timeout: Duration::from_secs(1200),
        };
        PowerOn {
            guest: std::thread::spawn(move || launch.run()),
            pidfile,
            start: Instant::now(),
        }
    }

    /// What the boot loader's variables file on the eMMC says `boot_targets` is, read by
    /// the host's libubootenv; with `set`, first sets it (the user at U-Boot's console).
    pub fn host_boot_targets(&self, set: Option<&str>) -> String {
        let vars = self.dir.join("uboot.env.host");
        let img = format!("{}@@{}", self.emmc.display(), disks::EMMC[1].0 * 512);
        run(Command::new("mcopy")
            .args(["-o", "-i", &img, "::uboot.env"])
            .arg(&vars));
        let cfg = self.dir.join("host-fw_env.config");
        std::fs::write(&cfg, format!("{} 0x0 {ENV_SIZE:#x}\n", vars.display())).unwrap();
        if let Some(value) = set {
            run(Command::new("fw_setenv")
                .arg("-c")
                .arg(&cfg)
                .args(["boot_targets", value]));
            run(Command::new("mcopy")
                .args(["-o", "-i", &img])
                .arg(&vars)
                .arg("::uboot.env"));
        }
        let got = run(Command::new("fw_printenv")
            .arg("-c")
            .arg(&cfg)
            .args(["-n", "boot_targets"]));
        String::from_utf8_lossy(&got.stdout).trim().to_owned()
    }
}

impl PowerOn {
    pub fn is_off(&self) -> bool {
        self.guest.is_finished()
    }

    /// Waits for the guest to power itself off; its console.
    pub fn wait_off(self) -> Run {
        self.guest.join().unwrap().unwrap()
    }

    /// Cuts the power: SIGKILL to QEMU, whatever the guest was doing; its console.
    pub fn cut(self) -> Run {
        let pid = std::fs::read_to_string(&self.pidfile).unwrap();
        run(Command::new("kill").args(["-KILL", pid.trim()]));
        self.wait_off()
    }
}
