//! Real U-Boot (Debian's qemu_arm build, 2023.01) reads environments written by this
//! crate from the second pflash bank (CONFIG_ENV_ADDR=0x4000000, CONFIG_ENV_SIZE=0x40000,
//! single copy: this build has no CONFIG_ENV_ADDR_REDUND, so the redundant layout cannot
//! be exercised on it). Each boot takes about a second under TCG.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use liminix_bootenv::storage::{CopyDevice, FileCopy};
use liminix_bootenv::{Endian, Env, EnvStore, Layout};

const UBOOT: &str = "/usr/lib/u-boot/qemu_arm/u-boot.bin";
const BANK: u64 = 64 << 20;
const ENV_SIZE: usize = 0x40000;

fn available() -> bool {
    let ok = Path::new(UBOOT).exists()
        && Command::new("qemu-system-arm")
            .arg("--version")
            .output()
            .is_ok();
    if !ok {
        eprintln!("qemu-system-arm or u-boot-qemu missing; skipping");
    }
    ok
}

struct Bed {
    _dir: tempfile::TempDir,
    flash0: PathBuf,
    env: PathBuf,
}

impl Bed {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let flash0 = dir.path().join("u-boot.img");
        std::fs::copy(UBOOT, &flash0).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&flash0)
            .unwrap();
        f.set_len(BANK).unwrap();
        let env = dir.path().join("env.img");
        // an erased NOR bank
        std::fs::write(&env, vec![0xFFu8; BANK as usize]).unwrap();
        Bed {
            _dir: dir,
            flash0,
            env,
        }
    }

    fn store(&self, endian: Endian) -> EnvStore {
        let layout = Layout::new(ENV_SIZE, false, endian).unwrap();
        let copies: Vec<Box<dyn CopyDevice>> = vec![Box::new(FileCopy::new(&self.env, 0))];
        EnvStore::new(layout, copies).unwrap()
    }

    /// Boots until `until` appears on the console (or 45 s pass), then stops QEMU.
    fn boot(&self, until: &str) -> String {
        let mut child = Command::new("qemu-system-arm")
            .args([
                "-M",
                "virt",
                "-accel",
                "tcg",
                "-m",
                "128",
                "-nographic",
                "-no-reboot",
            ])
            .args(["-nic", "none", "-monitor", "none", "-serial", "stdio"])
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,file={}",
                self.flash0.display()
            ))
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,file={}", self.env.display()))
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
        let deadline = Instant::now() + Duration::from_secs(45);
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

fn env(text: &str) -> Env {
    Env::from_text(text.as_bytes()).unwrap()
}

#[test]
fn uboot_loads_our_environment_and_our_edits() {
    if !available() {
        return;
    }
    let bed = Bed::new();
    let mut st = bed.store(Endian::Little);
    st.save(&env(
        "bootdelay=0\nslot=a b=c\nbootcmd=echo MARK-${slot}-END; poweroff\n",
    ))
    .unwrap();
    let con = bed.boot("poweroff");
    assert!(
        con.contains("Loading Environment from Flash... OK"),
        "{con}"
    );
    assert!(con.contains("MARK-a b=c-END"), "{con}");

    // edit with the drop-in fw_setenv: U-Boot must see the new value
    let cfg = bed.env.with_extension("config");
    std::fs::write(&cfg, format!("{} 0x0 0x40000 0x40000\n", bed.env.display())).unwrap();
    let args: Vec<OsString> = ["-c", cfg.to_str().unwrap(), "slot", "second try"]
        .iter()
        .map(OsString::from)
        .collect();
    let (mut o, mut e) = (Vec::new(), Vec::new());
    assert_eq!(liminix_bootenv::fw_setenv_main(&args, &mut o, &mut e), 0);
    let con = bed.boot("poweroff");
    assert!(
        con.contains("Loading Environment from Flash... OK"),
        "{con}"
    );
    assert!(con.contains("MARK-second try-END"), "{con}");
}

#[test]
fn uboot_rejects_torn_and_wrong_endian_copies_like_we_do() {
    if !available() {
        return;
    }
    let bed = Bed::new();
    let e = env("bootdelay=0\nbootcmd=echo SHOULD-NOT-RUN; poweroff\n");
    // wrong byte order: valid for a big-endian target, not for this ARM U-Boot
    bed.store(Endian::Big).save(&e).unwrap();
    assert!(bed.store(Endian::Little).load().is_err());
    let con = bed.boot("using default environment");
    assert!(con.contains("bad CRC, using default environment"), "{con}");
    assert!(!con.contains("SHOULD-NOT-RUN"), "{con}");

    // torn single copy (what a power cut during an in-place rewrite leaves)
    bed.store(Endian::Little).save(&e).unwrap();
    let mut img = std::fs::read(&bed.env).unwrap();
    img[0x20..0x40].fill(0xFF);
    std::fs::write(&bed.env, &img).unwrap();
    assert!(bed.store(Endian::Little).load().is_err());
    let con = bed.boot("using default environment");
    assert!(con.contains("bad CRC, using default environment"), "{con}");
}
