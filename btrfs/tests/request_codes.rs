//! The ioctl request codes against the kernel's own headers: a C program printing
//! `BTRFS_IOC_*` from <linux/btrfs.h>, compiled for the host and for ARMv7 (the Turris Omnia,
//! run with qemu-arm-static), must print what the crate computes.

use std::process::Command;

const PROGRAM: &str = r#"#include <stdio.h>
#include <linux/btrfs.h>
int main(void) {
  printf("BTRFS_IOC_SNAP_CREATE_V2 %lu\n", (unsigned long)BTRFS_IOC_SNAP_CREATE_V2);
  printf("BTRFS_IOC_SUBVOL_CREATE_V2 %lu\n", (unsigned long)BTRFS_IOC_SUBVOL_CREATE_V2);
  printf("BTRFS_IOC_SNAP_DESTROY %lu\n", (unsigned long)BTRFS_IOC_SNAP_DESTROY);
  printf("BTRFS_IOC_SUBVOL_GETFLAGS %lu\n", (unsigned long)BTRFS_IOC_SUBVOL_GETFLAGS);
  printf("BTRFS_IOC_SUBVOL_SETFLAGS %lu\n", (unsigned long)BTRFS_IOC_SUBVOL_SETFLAGS);
  return 0;
}
"#;

fn expected() -> String {
    liminix_btrfs::request_codes()
        .iter()
        .map(|(n, c)| format!("{n} {c}\n"))
        .collect()
}

fn compile_and_run(cc: &str, runner: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("codes.c");
    let exe = dir.path().join("codes");
    std::fs::write(&src, PROGRAM).unwrap();
    let st = Command::new(cc)
        .arg("-static")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("{cc}: {e}"));
    assert!(st.success(), "{cc} failed");
    let out = match runner {
        Some(r) => Command::new(r).arg(&exe).output(),
        None => Command::new(&exe).output(),
    }
    .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn codes_match_the_host_headers() {
    assert_eq!(compile_and_run("cc", None), expected());
}

/// The crate compiled for the host computes the generic encoding, which ARM shares.
#[test]
fn codes_match_the_armv7_headers() {
    assert_eq!(
        compile_and_run("arm-linux-gnueabihf-gcc", Some("qemu-arm-static")),
        expected()
    );
}
