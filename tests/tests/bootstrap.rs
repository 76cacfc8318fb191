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
