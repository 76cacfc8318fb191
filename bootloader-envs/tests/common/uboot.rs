//! Booting a real qemu_arm U-Boot (`qemu-system-arm -M virt`, TCG) with its environment in
//! the second pflash bank, and reading what it printed on the serial console.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use liminix_bootenv::Env;

/// Size of each pflash bank of the virt machine.
pub const BANK: u64 = 64 << 20;
/// CONFIG_ENV_SIZE (and CONFIG_ENV_SECT_SIZE) of qemu_arm_defconfig.
pub const ENV_SIZE: usize = 0x40000;

/// True if qemu-system-arm runs; prints why the caller skips otherwise.
pub fn have_qemu() -> bool {
    let ok = Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        eprintln!("qemu-system-arm missing; skipping");
    }
    ok
}

/// Parses `name=value` lines.
pub fn env(text: &str) -> Env {
    Env::from_text(text.as_bytes()).unwrap()
}

/// Bank 0 holds U-Boot, bank 1 (`env`) starts erased and holds the environment.
pub struct Bed {
    dir: tempfile::TempDir,
    flash0: PathBuf,
    /// The environment bank (CONFIG_ENV_ADDR = its offset 0).
    pub env: PathBuf,
}

impl Bed {
    pub fn new(uboot: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let flash0 = dir.path().join("u-boot.img");
        std::fs::copy(uboot, &flash0).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&flash0)
            .unwrap();
        f.set_len(BANK).unwrap();
        let env = dir.path().join("env.img");
        // an erased NOR bank
        std::fs::write(&env, vec![0xFFu8; BANK as usize]).unwrap();
        Bed { dir, flash0, env }
    }

    /// A scratch directory that lives as long as the bed.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Boots until `until` appears on the console (or 45 s pass), then stops QEMU.
    pub fn boot(&self, until: &str) -> String {
        self.boot_for(until, Duration::from_secs(45))
    }

    /// [`Self::boot`] with another time limit.
    pub fn boot_for(&self, until: &str, limit: Duration) -> String {
        let mut child = Command::new("qemu-system-arm")
            .args(["-M", "virt", "-accel", "tcg", "-m", "128"])
            .args(["-nographic", "-no-reboot", "-nic", "none"])
            .args(["-monitor", "none", "-serial", "stdio"])
            .arg("-drive")
            .arg(pflash(&self.flash0))
            .arg("-drive")
            .arg(pflash(&self.env))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start qemu-system-arm");
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stdout.take().unwrap();
        let sink = out.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let deadline = Instant::now() + limit;
        loop {
            let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
            let exited = child.try_wait().unwrap().is_some();
            if text.contains(until) || exited || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = reader.join();
        let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
        text
    }
}

fn pflash(file: &Path) -> String {
    format!("if=pflash,format=raw,file={}", file.display())
}
