//! Running the real tools the layouts are checked against.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/setup.sh installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn text(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd)).unwrap()
}

/// Bytes that do not compress to nothing, the same every run.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            if i % 3 == 0 {
                (x >> 24) as u8
            } else {
                b'k'
            }
        })
        .collect()
}

pub fn fdtget(dir: &Path, blob: &[u8], args: &[&str]) -> String {
    let path = dir.join("get.dtb");
    std::fs::write(&path, blob).unwrap();
    text(Command::new("fdtget").arg(&path).args(args))
        .trim_end()
        .to_owned()
}

pub fn dtc(dir: &Path, source: &str) -> Vec<u8> {
    let dts = dir.join("in.dts");
    std::fs::write(&dts, source).unwrap();
    run(Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb"])
        .arg(&dts))
}
