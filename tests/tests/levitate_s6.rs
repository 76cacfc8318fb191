//! `liminix-agent levitate` against a real s6-svscan as PID 1: a device root whose PID 1 is
//! Debian's s6-svscan (in PID, mount and network namespaces of its own, chrooted into the
//! root) with a `.s6-svscan/finish` that runs `/run/maintenance/exec` as Liminix's does. After
//! levitate, PID 1 must be the maintenance root's /init and its dropbear must answer with the
//! device's own host key (OpenSSH's strict check against a known_hosts made from that key).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use liminix_tests::device::agent_binary;
use liminix_vm::require_program;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Copies a host program and the libraries it links to the same paths below `root`.
fn install(root: &Path, program: &str) {
    let dest = root.join(program.trim_start_matches('/'));
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(program, &dest).unwrap();
    for (device, host) in
        liminix_recovery::libs::closure(Path::new("/"), Path::new(program)).unwrap()
    {
        let d = root.join(device.trim_start_matches('/'));
        std::fs::create_dir_all(d.parent().unwrap()).unwrap();
        std::fs::copy(host, d).unwrap();
    }
}

/// A Liminix-like device root: busybox, s6-svscan with the finish hook, dropbear, its host
/// key, root's authorized key. Returns the root and the known_hosts line of its host key.
fn device(dir: &Path) -> (PathBuf, String) {
    let root = dir.join("root");
    install(&root, "/usr/bin/busybox");
    install(&root, "/usr/bin/s6-svscan");
    install(&root, "/usr/sbin/dropbear");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    for d in [
        "proc",
        "sys",
        "dev",
        "tmp",
        "run/service/.s6-svscan",
        "etc/dropbear",
        "root/.ssh",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // Liminix's finish (execline there): the hook when it is executable, else reboot.
    let finish = root.join("run/service/.s6-svscan/finish");
    std::fs::write(
        &finish,
        "#!/bin/sh\ntest -x /run/maintenance/exec && exec /run/maintenance/exec\necho no hook\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&finish, std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = root.join("etc/dropbear/dropbear_ed25519_host_key");
    run(Command::new("dropbearkey")
        .args(["-t", "ed25519", "-f"])
        .arg(&key));
    let public = run(Command::new("dropbearkey").arg("-y").arg("-f").arg(&key));
    let line = String::from_utf8(public.stdout)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .unwrap()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(dir.join("id")));
    std::fs::copy(dir.join("id.pub"), root.join("root/.ssh/authorized_keys")).unwrap();
    (root, format!("127.0.0.1 {line}\n"))
}

/// PID 1 of the namespaces, as the host numbers it (unshare's only child).
fn namespace_pid1(unshare: &Child) -> u32 {
    let start = Instant::now();
    loop {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", unshare.id()))
                .unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.parse().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "unshare started no child"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the namespaces (unshare --kill-child takes PID 1 and so everything in them).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn levitate_hands_pid1_over_and_dropbear_answers_with_the_same_host_key() {
    for (tool, package) in [
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("s6-svscan", "s6"),
        ("dropbear", "dropbear-bin"),
        ("dropbearkey", "dropbear-bin"),
        ("ssh", "openssh-client"),
    ] {
        require_program(tool, package).unwrap();
    }
    let agent = agent_binary();
    let dir = tempfile::tempdir().unwrap();
    let (root, known_line) = device(dir.path());
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, known_line).unwrap();
    let proc_dir = root.join("proc");
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "--net", "--kill-child"])
        .arg(format!("--mount-proc={}", proc_dir.display()))
        .arg("chroot")
        .arg(&root)
        .args(["/usr/bin/s6-svscan", "/run/service"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("unshare (util-linux)");
    let guard = Guard(unshare);
    let pid1 = namespace_pid1(&guard.0);
    let control = root.join("run/service/.s6-svscan/control");
    let start = Instant::now();
    while !control.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "s6-svscan made no control FIFO"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ns = |args: &[&str]| {
        let mut c = Command::new("nsenter");
        c.args(["--target", &pid1.to_string(), "--mount", "--net", "--"]);
        c.args(args);
        c
    };
    let out = run(&mut ns(&[
        agent.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--json",
        "levitate",
    ]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["switched"], true, "{report}");
    assert_eq!(report["prepared"]["host_keys"], 1, "{report}");

    let start = Instant::now();
    let session = loop {
        let out = ns(&["ssh", "-i", dir.path().join("id").to_str().unwrap()])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
            .args(["-o", "ConnectTimeout=3", "root@127.0.0.1"])
            .arg("cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /exec /init; cat /etc/banner; liminix-agent version")
            .output()
            .unwrap();
        if out.status.success() || start.elapsed() > Duration::from_secs(30) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let stdout = String::from_utf8_lossy(&session.stdout);
    assert!(
        session.status.success(),
        "no login into the maintenance root: {}",
        String::from_utf8_lossy(&session.stderr)
    );
    eprintln!("ssh answered {:?} after levitate", start.elapsed());
    // PID 1 is the maintenance root's /init now (s6-svscan is gone).
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.contains("/init"), "{stdout}");
    assert!(stdout.contains("MAINTENANCE MODE"), "{stdout}");
    assert!(stdout.contains("liminix-agent 0."), "{stdout}");
    drop(guard);
}
