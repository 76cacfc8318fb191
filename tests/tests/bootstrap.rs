//! `update.sh` against devices without a fitting agent (docs/agents.md, "Bootstrap"): a device
//! with only busybox, one with an older agent, one with a newer agent, one whose CPU matches no
//! carried agent, one without room in /run, and a MIPS device (a mipsel busybox and the mipsel
//! agent run through binfmt_misc and qemu-user-static), each a chroot behind a real sshd.

use std::fs;
use std::path::Path;
use std::process::Output;

use liminix_bundle::wire::PROTOCOL;
use liminix_tests::closure::ClosureSpec;
use liminix_tests::device::{agent_binary, binfmt, test_agents_dir, Device};
use liminix_tests::lab::{text, Lab, Pack};
use liminix_vm::debian::{assets, Arch};

const SENT: &str = "/run/liminix/liminix-agent";

fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}",
        o.status,
        text(o)
    );
}

/// The JSON lines `update.sh --json` printed.
fn events(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn event<'a>(all: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    all.iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {all:?}"))
}

/// `status --json` of an agent on the device, over ssh.
fn status_with(lab: &Lab, agent: &str) -> serde_json::Value {
    let o = lab.sshd.ssh_run(&format!("{agent} status --json"));
    assert_ok(&o, "status");
    serde_json::from_slice(&o.stdout).expect("status JSON")
}

/// Every path below the device root with its type, mode, size and content or link target.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
        if meta.file_type().is_symlink() {
            out.push(format!(
                "{rel} -> {}",
                fs::read_link(&path).unwrap().display()
            ));
        } else if meta.is_dir() {
            out.push(format!("{rel}/ {mode:o}"));
            walk(root, &path, out);
        } else if meta.is_file() {
            let hash = liminix_bundle::nar::hash_path(&path).unwrap();
            out.push(format!("{rel} {mode:o} {} {hash}", meta.len()));
        } else {
            out.push(format!("{rel} {mode:o} special"));
        }
    }
}

#[test]
fn the_agent_answers_the_version_handshake() {
    let o = std::process::Command::new(agent_binary())
        .args(["version", "--json"])
        .output()
        .unwrap();
    assert_ok(&o, "version --json");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["agent_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["protocol"], PROTOCOL);
}

#[test]
fn a_device_with_only_busybox_gets_the_x86_64_agent_sent() {
    let lab = Lab::with_device(Device::builder().build().unwrap());
    let a = lab.generate(&ClosureSpec::small(31));
    let o = lab.update(
        &lab.updater(&a, &Pack::default()),
        &["--json", "--no-reboot"],
    );
    assert_ok(&o, "update.sh");
    let ev = events(&o);
    let agent = event(&ev, "agent");
    assert_eq!(agent["source"], "sent", "{agent}");
    assert_eq!(agent["cpu"], "x86_64", "{agent}");
    let ours = fs::read(agent_binary()).unwrap();
    assert_eq!(agent["bytes"], ours.len());
    assert_eq!(fs::read(lab.device.path(SENT)).unwrap(), ours);
    assert!(!lab
        .device
        .path("run/liminix/liminix-agent.partial")
        .exists());
    assert_eq!(status_with(&lab, SENT)["current"], 1);
    assert!(!lab.device.path("bin/liminix-agent").exists());

    // The next update finds the agent the first one left in /run and sends nothing but paths.
    let b = lab.derive(&a, &["ntp"], 0.2, 32);
    let o = lab.update(
        &lab.updater(&b, &Pack::default()),
        &["--json", "--no-reboot"],
    );
    assert_ok(&o, "second update.sh");
    let agent = events(&o)
        .into_iter()
        .find(|e| e["event"] == "agent")
        .unwrap();
    assert_eq!(agent["source"], "device", "{agent}");
    assert_eq!(agent["path"], SENT, "{agent}");
    assert_eq!(agent["newer"], false, "{agent}");
    assert_eq!(status_with(&lab, SENT)["current"], 2);
}

/// A device whose `/bin/liminix-agent` answers the handshake with `version_reply` (a shell
/// snippet) and otherwise runs the real agent, logging each call to `/run/agent-calls`.
fn device_answering(version_reply: &str) -> Device {
    let device = Device::builder().build().unwrap();
    let real = device.path("bin/liminix-agent.real");
    fs::copy(agent_binary(), &real).unwrap();
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> /run/agent-calls\n\
         if [ \"$1\" = version ]; then {version_reply}; fi\n\
         exec /bin/liminix-agent.real \"$@\"\n"
    );
    let wrapper = device.path("bin/liminix-agent");
    fs::write(&wrapper, script).unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(&wrapper)
        .status()
        .unwrap();
    device
}

fn calls(lab: &Lab) -> String {
    fs::read_to_string(lab.device.path("run/agent-calls")).unwrap_or_default()
}

#[test]
fn a_device_with_an_older_agent_gets_ours() {
    let older = format!("echo '{{\"agent_version\":\"0.0.1\",\"protocol\":{PROTOCOL}}}'; exit 0");
    // An agent from before the handshake existed: clap refuses the unknown subcommand.
    let before_handshake =
        "echo \"error: unrecognized subcommand 'version'\" >&2; exit 2".to_owned();
    for (seed, reply) in [(41, older), (42, before_handshake)] {
        let lab = Lab::with_device(device_answering(&reply));
        let a = lab.generate(&ClosureSpec::small(seed));
        let o = lab.update(
            &lab.updater(&a, &Pack::default()),
            &["--json", "--no-reboot"],
        );
        assert_ok(&o, "update.sh");
        let agent = event(&events(&o), "agent").clone();
        assert_eq!(agent["source"], "sent", "{agent}");
        assert_eq!(
            fs::read(lab.device.path(SENT)).unwrap(),
            fs::read(agent_binary()).unwrap()
        );
        assert_eq!(
            calls(&lab),
            "version --json\n",
            "the device's own agent only answered the handshake"
        );
        assert_eq!(status_with(&lab, SENT)["current"], 1);
    }
}

#[test]
fn a_newer_agent_on_the_device_is_used_and_named() {
    let newer = format!("echo '{{\"agent_version\":\"999.0.0\",\"protocol\":{PROTOCOL}}}'; exit 0");
    let lab = Lab::with_device(device_answering(&newer));
    let a = lab.generate(&ClosureSpec::small(51));
    let o = lab.update(&lab.updater(&a, &Pack::default()), &["--no-reboot"]);
    assert_ok(&o, "update.sh");
    let said = text(&o);
    assert!(
        said.contains(
            "the device's agent /bin/liminix-agent (999.0.0) is newer than this update.sh's"
        ),
        "{said}"
    );
    assert!(!lab.device.path("run/liminix").exists(), "nothing was sent");
    assert_eq!(calls(&lab), "version --json\nreceive --no-reboot\n");
    assert_eq!(status_with(&lab, "liminix-agent.real")["current"], 1);
}

#[test]
fn a_cpu_without_a_carried_agent_is_refused_before_anything_is_sent() {
    let lab = Lab::with_device(Device::builder().build().unwrap());
    let a = lab.generate(&ClosureSpec::small(61));
    let up = lab.updater_carrying(&a, &Pack::default(), "aarch64,mipsel");
    let before = tree(lab.device.root());
    let o = lab.update(&up, &["--json", "--no-reboot"]);
    assert_eq!(o.status.code(), Some(9), "{}", text(&o));
    let failed = event(&events(&o), "failed").clone();
    assert_eq!(failed["kind"], "unsupported_cpu", "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("uname -m x86_64, busybox 64-bit little-endian, e_machine 62"),
        "{message}"
    );
    assert!(message.contains("it carries aarch64, mipsel"), "{message}");
    assert!(message.contains("nothing was sent"), "{message}");
    assert_eq!(tree(lab.device.root()), before, "the device is unchanged");
}

#[test]
fn no_room_in_run_is_refused_before_sending() {
    let lab = Lab::with_device(Device::builder().build().unwrap());
    lab.device.mount_tmpfs_at("/run", 512 << 10).unwrap();
    let a = lab.generate(&ClosureSpec::small(71));
    let up = lab.updater(&a, &Pack::default());
    let before = tree(lab.device.root());
    let o = lab.update(&up, &["--json", "--no-reboot"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let failed = event(&events(&o), "failed").clone();
    assert_eq!(failed["kind"], "no_space", "{failed}");
    let need = fs::metadata(agent_binary()).unwrap().len();
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("the agent to send has {need}")),
        "{message}"
    );
    assert!(message.contains("free in /run"), "{message}");
    assert_eq!(tree(lab.device.root()), before, "the device is unchanged");
}

#[test]
fn a_mips_device_gets_the_mipsel_agent() {
    binfmt::register_qemu_user("mipsel").expect("binfmt_misc entry for qemu-mipsel-static");
    let busybox = assets(Arch::Mipsel)
        .expect("Debian's mipsel busybox")
        .busybox;
    let device = Device::builder().busybox(&busybox).build().unwrap();
    let uname = device.run_in_chroot("uname -m").unwrap();
    assert_eq!(String::from_utf8_lossy(&uname.stdout).trim(), "mips");
    let lab = Lab::with_device(device);
    let a = lab.generate(&ClosureSpec::small(81));
    let up = lab.updater_carrying(&a, &Pack::default(), "x86_64,mipsel");
    let o = lab.update(&up, &["--json", "--no-reboot"]);
    assert_ok(&o, "update.sh");
    let agent = event(&events(&o), "agent").clone();
    assert_eq!(agent["source"], "sent", "{agent}");
    assert_eq!(agent["cpu"], "mipsel", "{agent}");
    let mipsel = test_agents_dir().join("mipsel-unknown-linux-gnu/liminix-agent");
    assert_eq!(
        fs::read(lab.device.path(SENT)).unwrap(),
        fs::read(mipsel).unwrap()
    );
    let status = status_with(&lab, SENT);
    assert_eq!(status["current"], 1, "{status}");
    for p in &a.paths {
        let rel = p.trim_start_matches('/');
        assert_eq!(
            liminix_bundle::nar::hash_path(&lab.store_root().join(rel)).unwrap(),
            liminix_bundle::nar::hash_path(&lab.device.path(rel)).unwrap(),
            "{p}"
        );
    }
}

#[test]
fn an_agent_on_the_profile_path_is_found() {
    // Liminix puts defaultProfile.packages on the PATH in /etc/profile, which an ssh command's
    // shell does not read by itself.
    let device = Device::builder().build().unwrap();
    let dir = device.path("profile/bin");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(agent_binary(), dir.join("liminix-agent")).unwrap();
    fs::write(
        device.path("etc/profile"),
        "export PATH=/bin:/profile/bin\n",
    )
    .unwrap();
    let lab = Lab::with_device(device);
    let a = lab.generate(&ClosureSpec::small(91));
    let o = lab.update(
        &lab.updater(&a, &Pack::default()),
        &["--json", "--no-reboot"],
    );
    assert_ok(&o, "update.sh");
    let agent = event(&events(&o), "agent").clone();
    assert_eq!(agent["source"], "device", "{agent}");
    assert_eq!(agent["path"], "/profile/bin/liminix-agent", "{agent}");
    assert!(!lab.device.path("run/liminix").exists(), "nothing was sent");
}

/// The first bytes of an executable for `cpu`, enough for the packer's ELF check.
fn fake_agent(triple: &str) -> Vec<u8> {
    let (class64, little, machine, flags): (bool, bool, u16, u32) = match triple {
        "x86_64-unknown-linux-musl" => (true, true, 62, 0),
        "aarch64-unknown-linux-musl" => (true, true, 183, 0),
        "armv7-unknown-linux-gnueabihf" => (false, true, 40, 0x0500_0400),
        "mipsel-unknown-linux-gnu" => (false, true, 8, 0x7000_1007),
        _ => (false, false, 8, 0x7000_1007),
    };
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = if class64 { 2 } else { 1 };
    h[5] = if little { 1 } else { 2 };
    let (m, f) = if little {
        (machine.to_le_bytes(), flags.to_le_bytes())
    } else {
        (machine.to_be_bytes(), flags.to_be_bytes())
    };
    h[18..20].copy_from_slice(&m);
    let at = if class64 { 48 } else { 36 };
    h[at..at + 4].copy_from_slice(&f);
    h
}

const TRIPLES: [&str; 5] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "armv7-unknown-linux-gnueabihf",
    "mipsel-unknown-linux-gnu",
    "mips-unknown-linux-gnu",
];

fn carried_triples(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(out.join("share/liminix/agents"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn the_packer_carries_the_boards_cpu_or_all() {
    let lab = Lab::with_device(Device::builder().build().unwrap());
    let a = lab.generate(&ClosureSpec::small(95));
    let agents = lab.host.path().join("agents");
    for t in TRIPLES {
        fs::create_dir_all(agents.join(t)).unwrap();
        fs::write(agents.join(t).join("liminix-agent"), fake_agent(t)).unwrap();
    }
    let pack = |board: &str, extra: &[&str], out: &Path| {
        std::process::Command::new(liminix_tests::device::pack_binary())
            .args(["updater", "--toplevel", &a.toplevel, "--board", board])
            .args(["--level", "1", "--store-root"])
            .arg(lab.store_root())
            .arg("--key")
            .arg(&lab.secret)
            .arg("--agents-dir")
            .arg(&agents)
            .args(extra)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let ar750 = lab.host.path().join("out-ar750");
    assert_ok(&pack("gl-ar750", &[], &ar750), "pack for gl-ar750");
    assert_eq!(carried_triples(&ar750), vec!["mips-unknown-linux-gnu"]);
    let sha = fs::read_to_string(
        ar750.join("share/liminix/agents/mips-unknown-linux-gnu/liminix-agent.sha256"),
    )
    .unwrap();
    assert!(sha.ends_with("  liminix-agent\n"), "{sha}");
    let script = fs::read_to_string(ar750.join("bin/update.sh")).unwrap();
    assert!(script.contains("--agents-dir \"$here/../share/liminix/agents\""));

    let unknown = lab.host.path().join("out-unknown");
    assert_ok(
        &pack("a-board-without-a-file", &[], &unknown),
        "pack for a board without a file",
    );
    let mut all: Vec<String> = TRIPLES.iter().map(|t| t.to_string()).collect();
    all.sort();
    assert_eq!(carried_triples(&unknown), all);

    fs::remove_dir_all(agents.join("mipsel-unknown-linux-gnu")).unwrap();
    let refused = lab.host.path().join("out-refused");
    let o = pack(
        "a-board-without-a-file",
        &["--agents", "x86_64,mipsel"],
        &refused,
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no mipsel agent at"), "{}", text(&o));
    assert!(text(&o).contains("scripts/build-agents.sh"), "{}", text(&o));
    assert!(!refused.join("bin/update.sh").exists());
    assert!(!refused.join("share/liminix/system.bundle").exists());
}

/// Runs the bootstrap script over ssh with `input` as the client's side, as a client that
/// ignores the probe would: the script's own checks are what is left.
fn script_with_input(lab: &Lab, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = std::process::Command::new("ssh")
        .args(lab.sshd.ssh_args())
        .arg(lab.sshd.host())
        .arg(liminix_build_tools::bootstrap::script(
            " receive --no-reboot",
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_device_checks_the_size_and_hash_of_a_sent_agent() {
    let lab = Lab::with_device(Device::builder().build().unwrap());
    let wrong = "0".repeat(64);
    let o = script_with_input(&lab, format!("send 5 {wrong}\nhello").as_bytes());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("liminix-bootstrap 1\n"), "{out}");
    assert!(
        out.contains(&format!(
            "bootstrap-error verify sha256 of /run/liminix/liminix-agent.partial is {}, expected {wrong}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"hello"))
        )),
        "{out}"
    );
    let o = script_with_input(&lab, format!("send 10 {wrong}\nhello").as_bytes());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("bootstrap-error incomplete received 5 of 10 bytes"),
        "{out}"
    );
    for name in ["liminix-agent", "liminix-agent.partial"] {
        assert!(
            !lab.device.path("run/liminix").join(name).exists(),
            "{name}"
        );
    }
    // No answer at all: the probe only looked.
    let before = tree(lab.device.root());
    let o = script_with_input(&lab, b"");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).ends_with("probe-end\n"));
    assert_eq!(tree(lab.device.root()), before);
}
