//! `liminix-pack recovery`: the same inputs and SOURCE_DATE_EPOCH give the same archive bytes,
//! every entry carries that time (read back by GNU cpio), and an output that is an input is
//! refused before anything is written.

use std::path::Path;
use std::process::{Command, Output};

fn pack(dir: &Path, out: &Path, epoch: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liminix-pack"))
        .env("SOURCE_DATE_EPOCH", epoch)
        .arg("recovery")
        .arg("--agent")
        .arg(dir.join("agent"))
        .args([
            "--busybox",
            "/usr/bin/busybox",
            "--dropbear",
            "/usr/sbin/dropbear",
        ])
        .arg("--authorized-keys")
        .arg(dir.join("keys"))
        .args(["--address", "192.168.8.1/24", "--dev", "br0"])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn the_archive_is_reproducible_and_dated_by_source_date_epoch() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agent"), b"\x7fELF stand-in bytes").unwrap();
    std::fs::write(dir.path().join("keys"), b"ssh-ed25519 AAAA user\n").unwrap();
    let (a, b) = (dir.path().join("a.cpio.gz"), dir.path().join("b.cpio.gz"));
    for out in [&a, &b] {
        let o = pack(dir.path(), out, "1700000000");
        assert!(o.status.success(), "{o:?}");
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let plain = Command::new("gzip")
        .arg("-dc")
        .arg(&a)
        .output()
        .expect("gzip");
    assert!(plain.status.success());
    let cpio = dir.path().join("a.cpio");
    std::fs::write(&cpio, plain.stdout).unwrap();
    let list = Command::new("cpio")
        .env("TZ", "UTC")
        .args(["-tv", "--quiet", "-F"])
        .arg(&cpio)
        .output()
        .expect("cpio (Debian package cpio)");
    let text = String::from_utf8(list.stdout).unwrap();
    let init = text
        .lines()
        .find(|l| l.ends_with(" init"))
        .expect("an /init entry");
    assert!(init.contains("Nov 14  2023"), "{init}");
    assert!(text.lines().all(|l| l.contains("Nov 14  2023")), "{text}");
    let o = pack(dir.path(), &dir.path().join("c.cpio.gz"), "1700000001");
    assert!(o.status.success());
    assert_ne!(
        std::fs::read(&a).unwrap(),
        std::fs::read(dir.path().join("c.cpio.gz")).unwrap()
    );
}

#[test]
fn an_input_as_output_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agent"), b"agent").unwrap();
    std::fs::write(dir.path().join("keys"), b"ssh-ed25519 AAAA user\n").unwrap();
    let o = pack(dir.path(), &dir.path().join("keys"), "0");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refusing to write"),
        "{o:?}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("keys")).unwrap(),
        b"ssh-ed25519 AAAA user\n"
    );
}
