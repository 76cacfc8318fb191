//! Real NAND through the kernel: an x86_64 Linux VM (QEMU TCG) with nandsim split into
//! two partitions, each with its first block marked bad. libubootenv's fw_setenv edits
//! a redundant environment on /dev/mtd0, ours the same on /dev/mtd1 (through
//! liminix-mtd's ioctls, skipping the bad block); after every step the outputs and the
//! good blocks of the two partitions must be identical (except after steps where
//! libubootenv reads a file through stdio and leaves heap garbage after the terminator).
//! About 10 s.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whichever Debian kernel is installed together with its nandsim module.
fn kernel() -> Option<(PathBuf, PathBuf)> {
    let mut found = None;
    for e in std::fs::read_dir("/lib/modules").ok()? {
        let dir = e.ok()?.path();
        let ver = dir.file_name()?.to_string_lossy().into_owned();
        let vmlinuz = PathBuf::from(format!("/boot/vmlinuz-{ver}"));
        if vmlinuz.exists() && dir.join("kernel/drivers/mtd/nand/raw/nandsim.ko").exists() {
            found = Some((vmlinuz, dir));
        }
    }
    found
}

fn copy_with_libs(bin: &Path, root: &Path, dest: &str) {
    let to = root.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(bin, &to).unwrap();
    let ldd = Command::new("ldd").arg(bin).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        if let Some(lib) = path {
            let to = root.join(lib.strip_prefix("/").unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&lib, &to).unwrap();
        }
    }
}

const SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /var/lock /tmp
M=/modules
insmod $M/mtd.ko; insmod $M/bch.ko; insmod $M/nandcore.ko; insmod $M/nand.ko
# 256 MiB, 128 KiB blocks, 2 KiB pages; two 1 MiB partitions; block 0 of each bad
insmod $M/nandsim.ko first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15 parts=8,8 badblocks=0,8
cat /proc/mtd
for n in 0 1; do
  printf '/dev/mtd%s 0x0 0x20000 0x20000 2\n/dev/mtd%s 0x40000 0x20000 0x20000 2\n' $n $n > /tmp/cfg$n
done
printf 'bootcmd=run boot_a\nbootdelay=3\nslot=a\n' > /tmp/defaults
printf '# script\nslot=b\nupgrade_available=1\nbootcount=0\nbootdelay=\n' > /tmp/script
step() {
  name=$1; shift
  fw_$name -c /tmp/cfg0 "$@" >/tmp/r.out 2>/tmp/r.err; rr=$?
  /bin/bootenv-tools fw_$name -c /tmp/cfg1 "$@" >/tmp/m.out 2>/tmp/m.err; rm=$?
  dd if=/dev/mtd0 bs=131072 skip=1 count=5 2>/dev/null >/tmp/r.img
  dd if=/dev/mtd1 bs=131072 skip=1 count=5 2>/dev/null >/tmp/m.img
  o=same; cmp -s /tmp/r.out /tmp/m.out || o=DIFF
  e=same; cmp -s /tmp/r.err /tmp/m.err || e=DIFF
  i=same; cmp -s /tmp/r.img /tmp/m.img || i=DIFF
  echo "STEP $name $* :: rc $rr $rm out $o err $e img $i"
  cat /tmp/m.out
}
step printenv -f /tmp/defaults
step setenv -f /tmp/defaults slot a
step setenv bootdelay 1
step setenv extra "with spaces = x"
echo STRICT
step setenv slot b upgrade_available 1
step printenv
step setenv extra
step setenv bootdelay 1
step printenv -n slot bootdelay
# libubootenv reads the script through stdio; its heap then leaves garbage after the
# terminator, so from here only outputs are compared.
echo LOOSE
step setenv -s /tmp/script
step printenv
echo VM-DONE
poweroff -f
"#;

#[test]
fn fw_setenv_on_nandsim_matches_libubootenv() {
    let Some((vmlinuz, moddir)) = kernel() else {
        eprintln!("no kernel with nandsim; skipping");
        return;
    };
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_err()
        || !Path::new("/usr/bin/fw_setenv").exists()
        || !Path::new("/bin/busybox").exists()
        || Command::new("cpio").arg("--version").output().is_err()
    {
        eprintln!("qemu-system-x86_64, libubootenv-tool, busybox-static or cpio missing; skipping");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    for d in ["bin", "proc", "sys", "dev", "modules", "usr/bin"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    copy_with_libs(
        Path::new(env!("CARGO_BIN_EXE_bootenv-tools")),
        &root,
        "/bin/bootenv-tools",
    );
    for t in ["fw_printenv", "fw_setenv"] {
        copy_with_libs(
            Path::new(&format!("/usr/bin/{t}")),
            &root,
            &format!("/usr/bin/{t}"),
        );
    }
    for m in [
        "kernel/drivers/mtd/mtd.ko",
        "kernel/lib/bch.ko",
        "kernel/drivers/mtd/nand/nandcore.ko",
        "kernel/drivers/mtd/nand/raw/nand.ko",
        "kernel/drivers/mtd/nand/raw/nandsim.ko",
    ] {
        let src = moddir.join(m);
        std::fs::copy(&src, root.join("modules").join(src.file_name().unwrap())).unwrap();
    }
    let init = root.join("init");
    std::fs::write(&init, SCRIPT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    let initrd = tmp.path().join("initrd.cpio");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && find . | cpio -o -H newc --quiet > {}",
            root.display(),
            initrd.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());

    let out = Command::new("timeout")
        .arg("180")
        .arg("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-m",
            "512",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
        ])
        .arg("-kernel")
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let con = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(con.contains("VM-DONE"), "VM did not finish:\n{con}");
    assert!(con.contains("NAND simulator partition 1"), "{con}");
    let mut strict = false;
    let mut steps = 0;
    for line in con.lines() {
        match line {
            "STRICT" => strict = true,
            "LOOSE" => strict = false,
            _ => {}
        }
        let Some(rest) = line.strip_prefix("STEP ") else {
            continue;
        };
        steps += 1;
        let f: Vec<&str> = rest
            .rsplit(" :: ")
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        // rc R M out X err Y img Z
        assert_eq!(f[1], f[2], "exit status differs: {line}");
        assert_eq!(f[4], "same", "stdout differs: {line}");
        assert_eq!(f[6], "same", "stderr differs: {line}");
        if strict {
            assert_eq!(f[8], "same", "flash contents differ: {line}\n{con}");
        }
    }
    assert_eq!(steps, 11, "{con}");
    // the last printenv shows the script's effect
    let tail = con.rsplit("STEP printenv  :: ").next().unwrap();
    let tail = tail.split("VM-DONE").next().unwrap();
    let vars: Vec<&str> = tail.lines().skip(1).collect();
    assert_eq!(
        vars,
        [
            "bootcmd=run boot_a",
            "bootcount=0",
            "slot=b",
            "upgrade_available=1"
        ],
        "{con}"
    );
    assert!(!tail.contains("bootdelay="), "{con}");
}
