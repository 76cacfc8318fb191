//! What the kexec tests share: the second system's initramfs, which prints the command line
//! its kernel received after a marker and powers off, and the script line that runs the agent.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use liminix_vm::initramfs::Initramfs;
use liminix_vm::VmOutput;

/// The line the second kernel's userland prints: `SECOND-SYSTEM cmdline=[…]`.
pub const SECOND: &str = "SECOND-SYSTEM cmdline=";

/// An initramfs of `busybox` and an /init that prints [`SECOND`] with /proc/cmdline and
/// powers off, written into `dir`.
pub fn second_initramfs(busybox: &Path, dir: &Path) -> PathBuf {
    let mut fs = Initramfs::new();
    fs.copy(busybox, "/bin/busybox")
        .unwrap_or_else(|e| panic!("{e}"));
    fs.symlink("/bin/sh", "busybox");
    let init = format!(
        "#!/bin/busybox sh\n\
         /bin/busybox mkdir -p /proc\n\
         /bin/busybox mount -t proc proc /proc\n\
         echo \"{SECOND}[$(/bin/busybox cat /proc/cmdline)]\"\n\
         /bin/busybox poweroff -f\n"
    );
    fs.bytes("/init", init.as_bytes(), 0o755);
    let path = dir.join("second.cpio");
    fs.write(&path).unwrap_or_else(|e| panic!("{e}"));
    path
}

/// The command line the second kernel printed, or a panic with the console.
pub fn second_cmdline(out: &VmOutput) -> String {
    let line = out
        .serial
        .lines()
        .find_map(|l| l.split_once(SECOND).map(|(_, rest)| rest))
        .unwrap_or_else(|| {
            panic!(
                "the second system never printed its marker; serial:\n{}",
                out.serial
            )
        });
    line.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

/// The one JSON line the agent printed between `begin` and `end` marker lines.
pub fn json_between(out: &VmOutput, begin: &str, end: &str) -> serde_json::Value {
    let mut inside = false;
    for l in out.serial.lines() {
        if l.starts_with(end) {
            break;
        }
        if inside && l.starts_with('{') {
            return serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        }
        inside |= l.starts_with(begin);
    }
    panic!("no JSON after {begin}; serial:\n{}", out.serial)
}
