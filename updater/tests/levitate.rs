//! `liminix-agent levitate --root`: the RAM refusal leaves nothing behind, `--no-switch` writes
//! the whole root with the device's own keys, and a PID 1 whose finish script would not run the
//! hook is not stopped. The device root holds Debian's busybox and dropbear with its libraries.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn copy(root: &Path, device: &str, from: &Path) {
    let to = root.join(device.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

fn device(mem_available_kib: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy(root, "/bin/busybox", Path::new("/usr/bin/busybox"));
    copy(root, "/usr/sbin/dropbear", Path::new("/usr/sbin/dropbear"));
    let libs = liminix_recovery::libs::closure(Path::new("/"), Path::new("/usr/sbin/dropbear"));
    for (device, host) in libs.expect("dropbear-bin is installed") {
        copy(root, &device, &host);
    }
    std::fs::create_dir_all(root.join("etc/dropbear")).unwrap();
    std::fs::write(
        root.join("etc/dropbear/dropbear_ed25519_host_key"),
        b"the device's key",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("root/.ssh")).unwrap();
    std::fs::write(
        root.join("root/.ssh/authorized_keys"),
        b"ssh-ed25519 AAAA user\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("proc")).unwrap();
    let meminfo = format!("MemTotal: 65536 kB\nMemAvailable: {mem_available_kib} kB\n");
    std::fs::write(root.join("proc/meminfo"), meminfo).unwrap();
    std::fs::create_dir_all(root.join("run/service/.s6-svscan")).unwrap();
    std::fs::write(
        root.join("run/service/.s6-svscan/finish"),
        "#!/bin/sh\nexec reboot -f\n",
    )
    .unwrap();
    dir
}

fn levitate(root: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liminix-agent"))
        .arg("--root")
        .arg(root)
        .args(["--json", "levitate", "--address", "10.0.0.1/24"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn too_little_ram_is_refused_with_the_numbers_and_nothing_is_written() {
    let dev = device(12 * 1024);
    let out = levitate(dev.path(), &["--no-switch"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bytes of RAM and 8388608 more"), "{stderr}");
    assert!(stderr.contains("only 12582912 are available"), "{stderr}");
    assert!(!dev.path().join("run/maintenance").exists());
    assert!(!dev.path().join("run/.maintenance.new").exists());
}

#[test]
fn no_switch_writes_the_whole_root_with_the_devices_keys() {
    let dev = device(512 * 1024);
    let out = levitate(dev.path(), &["--no-switch"]);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["switched"], false);
    assert_eq!(report["prepared"]["addresses"][0], "10.0.0.1/24 dev eth0");
    let m = dev.path().join("run/maintenance");
    let ram = report["prepared"]["ram_bytes"].as_u64().unwrap();
    assert!(ram > std::fs::metadata(m.join("bin/dropbear")).unwrap().len());
    for exe in [
        "exec",
        "init",
        "bin/busybox",
        "bin/dropbear",
        "bin/liminix-agent",
    ] {
        let mode = std::fs::metadata(m.join(exe)).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{exe}");
    }
    assert_eq!(
        std::fs::read(m.join("etc/dropbear/dropbear_ed25519_host_key")).unwrap(),
        b"the device's key"
    );
    let key_mode = std::fs::metadata(m.join("etc/dropbear/dropbear_ed25519_host_key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_link(m.join("bin/flashcp")).unwrap(),
        Path::new("liminix-agent")
    );
    let init = std::fs::read_to_string(m.join("init")).unwrap();
    assert!(init.contains("ip addr add 10.0.0.1/24 dev eth0"), "{init}");
    assert!(
        init.contains("-r /etc/dropbear/dropbear_ed25519_host_key"),
        "{init}"
    );
}

#[test]
fn a_finish_script_that_would_not_run_the_hook_leaves_pid1_alone() {
    let dev = device(512 * 1024);
    let out = levitate(dev.path(), &[]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not run /run/maintenance/exec"),
        "{stderr}"
    );
    // The root is ready; only the switch was refused.
    assert!(dev.path().join("run/maintenance/exec").is_file());
}

#[test]
fn a_run_tmpfs_too_small_for_the_root_is_refused() {
    let dev = device(512 * 1024);
    let run = dev.path().join("run");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&run)
        .status()
        .expect("mount (Debian package mount)");
    assert!(mounted.success(), "mounting a tmpfs needs root");
    std::fs::create_dir_all(run.join("service/.s6-svscan")).unwrap();
    let out = levitate(dev.path(), &["--no-switch"]);
    let _ = Command::new("umount").arg(&run).status();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not enough space in"), "{stderr}");
    assert!(stderr.contains("1048576 are free"), "{stderr}");
}
