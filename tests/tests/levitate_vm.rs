//! The maintenance root of `liminix-pack recovery` boots as a real kernel's initramfs: an
//! x86_64 guest (the host's Debian kernel, TCG) with QEMU user networking forwarded to a
//! loopback port. The host's OpenSSH client logs in with the authorized key, checks the host
//! key strictly against the one given to the packer (made by dropbearkey) and reads the banner;
//! `reboot` in the guest must then really reboot, which `-no-reboot` turns into QEMU's exit.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use liminix_tests::device::{agent_binary, pack_binary};
use liminix_vm::initramfs::Initramfs;
use liminix_vm::kernel::find_kernel;
use liminix_vm::qemu::Launch;
use liminix_vm::require_program;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A client key pair and a dropbear host key, with a known_hosts naming only that host key.
fn keys(dir: &Path, port: u16) -> (PathBuf, PathBuf, PathBuf) {
    let id = dir.join("id");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&id));
    let host_key = dir.join("dropbear_ed25519_host_key");
    run(Command::new("dropbearkey")
        .args(["-t", "ed25519", "-f"])
        .arg(&host_key));
    let public = run(Command::new("dropbearkey")
        .arg("-y")
        .arg("-f")
        .arg(&host_key));
    let line = String::from_utf8(public.stdout)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("ssh-ed25519 "))
        .expect("dropbearkey -y prints the public key")
        .to_string();
    let mut words = line.split_whitespace();
    let (kind, key) = (words.next().unwrap(), words.next().unwrap());
    let known = dir.join("known_hosts");
    std::fs::write(&known, format!("[127.0.0.1]:{port} {kind} {key}\n")).unwrap();
    (id, host_key, known)
}

/// The initramfs: the packer's archive, then (4-byte aligned, as the kernel wants the next
/// archive) a plain cpio with the virtio network driver, which Debian's kernel has as modules.
fn initrd(dir: &Path, maintenance: &Path) -> PathBuf {
    let kernel = find_kernel().unwrap();
    let mut extra = Initramfs::new();
    let modules = ["virtio_pci".to_string(), "virtio_net".to_string()];
    extra.modules(&kernel, &modules).unwrap();
    extra.bytes("/etc/modules", b"virtio_pci\nvirtio_net\n", 0o644);
    let mut bytes = std::fs::read(maintenance).unwrap();
    bytes.resize(bytes.len().div_ceil(4) * 4, 0);
    bytes.extend(extra.finish());
    let out = dir.join("initrd");
    std::fs::write(&out, bytes).unwrap();
    out
}

fn ssh(id: &Path, known: &Path, port: u16, command: &str) -> Output {
    Command::new("ssh")
        .arg("-i")
        .arg(id)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .args(["-o", "ConnectTimeout=5", "-o", "LogLevel=INFO"])
        .args(["-p", &port.to_string(), "root@127.0.0.1", command])
        .output()
        .expect("ssh (Debian package openssh-client)")
}

#[test]
fn the_packed_maintenance_root_boots_and_answers_ssh_with_the_given_host_key() {
    for (tool, package) in [
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("dropbearkey", "dropbear-bin"),
        ("dropbear", "dropbear-bin"),
        ("qemu-system-x86_64", "qemu-system-x86"),
    ] {
        require_program(tool, package).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (id, host_key, known) = keys(dir.path(), port);
    let archive = dir.path().join("maintenance.cpio.gz");
    run(Command::new(pack_binary())
        .arg("recovery")
        .arg("--agent")
        .arg(agent_binary())
        .args([
            "--busybox",
            "/usr/bin/busybox",
            "--dropbear",
            "/usr/sbin/dropbear",
        ])
        .arg("--authorized-keys")
        .arg(dir.path().join("id.pub"))
        .arg("--host-key")
        .arg(&host_key)
        .args(["--address", "10.0.2.15/24", "--gateway", "10.0.2.2"])
        .arg("--out")
        .arg(&archive));
    let initrd = initrd(dir.path(), &archive);
    let kernel = find_kernel().unwrap();
    let launch = Launch {
        program: "qemu-system-x86_64",
        package: "qemu-system-x86",
        args: [
            "-accel",
            "tcg",
            "-nographic",
            "-no-reboot",
            "-m",
            "512",
            "-kernel",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([kernel.image.display().to_string(), "-initrd".into()])
        .chain([initrd.display().to_string(), "-append".into()])
        .chain(["console=ttyS0 panic=-1".into(), "-netdev".into()])
        .chain([format!("user,id=n,hostfwd=tcp:127.0.0.1:{port}-:22")])
        .chain(["-device".into(), "virtio-net-pci,netdev=n".into()])
        .collect(),
        stop: None,
        timeout: Duration::from_secs(300),
    };
    let guest = std::thread::spawn(move || launch.run());

    let start = Instant::now();
    let session = loop {
        let out = ssh(
            &id,
            &known,
            port,
            "cat /etc/banner; liminix-agent version; readlink /bin/flashcp; ip route",
        );
        if out.status.success() || start.elapsed() > Duration::from_secs(240) || guest.is_finished()
        {
            break out;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let stdout = String::from_utf8_lossy(&session.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&session.stderr).into_owned();
    if !session.status.success() {
        let _ = ssh(&id, &known, port, "reboot");
        let run = guest.join().unwrap();
        panic!("no ssh login: {stderr}\nguest: {run:?}");
    }
    eprintln!("ssh answered after {:?}", start.elapsed());
    assert!(stdout.contains("MAINTENANCE MODE"), "{stdout}");
    assert!(
        stdout.contains("flashcp -v firmware.bin mtd:firmware"),
        "{stdout}"
    );
    assert!(stdout.contains("liminix-agent 0."), "{stdout}");
    assert!(stdout.contains("liminix-agent\n"), "{stdout}");
    assert!(stdout.contains("default via 10.0.2.2 dev eth0"), "{stdout}");
    // dropbear's -b banner, shown by the client before the login.
    assert!(stderr.contains("MAINTENANCE MODE"), "{stderr}");

    // `reboot` must really reboot: QEMU (-no-reboot) exits.
    let _ = ssh(&id, &known, port, "reboot");
    let run = guest.join().unwrap().unwrap();
    assert!(!run.timed_out, "the guest did not reboot: {}", run.serial);
    assert!(run.serial.contains("maintenance: ready"), "{}", run.serial);
    assert!(run.serial.contains("maintenance: reboot"), "{}", run.serial);
}

/// `levitate --kexec` in a guest: the agent describes the maintenance root from the guest's
/// own system (busybox, dropbear with its libraries, host key, authorized key), boots the
/// same kernel again with it as the initramfs (kexec_file_load through liminix-kexec) and the
/// running command line plus a word, and the second boot's /init reaches `maintenance: ready`
/// on the console.
#[test]
fn levitate_kexec_boots_the_running_kernel_into_the_maintenance_root() {
    require_program("dropbearkey", "dropbear-bin").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, host_key, _) = keys(dir.path(), 22);
    let kernel = find_kernel().unwrap();
    let agent = liminix_vm::build_static(
        "liminix-agent",
        liminix_vm::StaticTarget::Bin("liminix-agent"),
    )
    .unwrap();
    let out = liminix_vm::VmBuilder::new()
        .file(agent, "/bin/liminix-agent")
        .file(&kernel.image, "/k/vmlinuz")
        .executable("/usr/sbin/dropbear", "/usr/sbin/dropbear")
        .file(&host_key, "/etc/dropbear/dropbear_ed25519_host_key")
        .file(dir.path().join("id.pub"), "/root/.ssh/authorized_keys")
        .memory_mb(512)
        .timeout(300)
        .script(
            "echo LEVITATE-BEGIN\n\
             liminix-agent --json levitate --kexec --kernel /k/vmlinuz --append liminix.levitated=1 \
             --address 10.0.2.15/24 --gateway 10.0.2.2\n\
             echo LEVITATE-RETURNED\n",
        )
        .run_until("maintenance: ready")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.killed_at_marker, "{}", out.serial);
    assert!(!out.serial.contains("LEVITATE-RETURNED"), "{}", out.serial);
    let report = out
        .serial
        .lines()
        .find(|l| l.starts_with("{\"command_line\"") || l.contains("\"kexec\":true"))
        .unwrap_or_else(|| panic!("no report: {}", out.serial));
    let v: serde_json::Value = serde_json::from_str(report).unwrap();
    assert!(
        v["command_line"]
            .as_str()
            .unwrap()
            .ends_with("liminix.levitated=1"),
        "{v}"
    );
    assert_eq!(v["prepared"]["host_keys"], 1, "{v}");
    let after = &out.serial[out.serial.find("LEVITATE-BEGIN").unwrap()..];
    assert!(after.contains("MAINTENANCE MODE"), "{}", out.serial);
}
