//! A fleet for the Ansible tests and the fleet benchmark: one build host (a [`Lab`]'s store root,
//! signing key and `update.sh`) and N device chroots, each behind its own real sshd on a loopback
//! port and trusting the lab's key; an Ansible inventory of them; and `ansible-playbook` runs
//! with the collection in `ansible/` (`liminix.update`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde::Deserialize;

use crate::device::{Device, SshServer};
use crate::lab::{text, Lab};

/// Options every inventory host gets: the chroots' host keys are made per run.
const SSH_OPTIONS: &str = "-o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR";

pub struct Fleet {
    /// The build host, and the first device (`r00`).
    pub lab: Lab,
    /// The other devices, `r01` on.
    pub more: Vec<(Device, SshServer)>,
    /// Ports the inventory gives instead of the sshd ones (a benchmark's counting proxies).
    ports: Option<Vec<u16>>,
    /// Hosts reached through a jump host: index -> (inventory address, extra ssh options).
    routes: std::collections::BTreeMap<usize, (String, String)>,
    dir: tempfile::TempDir,
}

/// One row of the collection's summary (`LIMINIX_FLEET_SUMMARY`).
#[derive(Clone, Debug, Deserialize)]
pub struct Row {
    pub host: String,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub sent_bytes: u64,
    pub seconds: Option<f64>,
    pub result: String,
    #[serde(default)]
    pub would_send_bytes: Option<u64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// One `ansible-playbook` run.
pub struct Run {
    pub output: Output,
    pub summary: Vec<Row>,
    pub seconds: f64,
}

impl Run {
    pub fn row(&self, host: &str) -> &Row {
        self.summary
            .iter()
            .find(|r| r.host == host)
            .unwrap_or_else(|| panic!("{host} is not in the summary: {}", text(&self.output)))
    }
}

/// `ansible/` of this source tree: the collection.
pub fn collection_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .join("ansible")
}

fn device_with_sshd(public: &[u8]) -> (Device, SshServer) {
    let device = Device::new().expect("device");
    device
        .install_trusted_key("lab.pub", public)
        .expect("trusted key");
    let sshd = SshServer::start(&device).expect("sshd");
    (device, sshd)
}

impl Fleet {
    /// `n` devices (at least 1), built a few at a time.
    pub fn new(n: usize) -> Fleet {
        let lab = Lab::new();
        let public = std::fs::read(&lab.public).expect("public key");
        let mut more = Vec::new();
        let per_wave = 4;
        let mut left = n.saturating_sub(1);
        while left > 0 {
            let wave = left.min(per_wave);
            let built: Vec<(Device, SshServer)> = std::thread::scope(|s| {
                let workers: Vec<_> = (0..wave)
                    .map(|_| s.spawn(|| device_with_sshd(&public)))
                    .collect();
                workers
                    .into_iter()
                    .map(|w| w.join().expect("device thread"))
                    .collect()
            });
            more.extend(built);
            left -= wave;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        link_collection(dir.path());
        Fleet {
            lab,
            more,
            ports: None,
            routes: Default::default(),
            dir,
        }
    }

    /// `(name, device, sshd)` for every device, `r00` first.
    pub fn members(&self) -> Vec<(String, &Device, &SshServer)> {
        std::iter::once((&self.lab.device, &self.lab.sshd))
            .chain(self.more.iter().map(|(d, s)| (d, s)))
            .enumerate()
            .map(|(i, (d, s))| (format!("r{i:02}"), d, s))
            .collect()
    }

    /// Makes the inventory name `ports` (one per device, in order) instead of the sshd ports.
    pub fn set_ports(&mut self, ports: Vec<u16>) {
        self.ports = Some(ports);
    }

    /// Makes device `index` reachable only through `jump`: its inventory address becomes a name
    /// that resolves nowhere, and its ssh options a `ProxyCommand` that asks the jump host to
    /// connect to the device's port (`ssh -W`), so every connection Ansible or `update.sh` makes
    /// to it goes through the jump host or fails.
    pub fn route_through(&mut self, index: usize, jump: &SshServer) {
        let name = format!("r{index:02}.behind-jump.invalid");
        let proxy = format!(
            "ssh -F /dev/null -p {} -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
             -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes \
             -W 127.0.0.1:%p {}",
            jump.port(),
            jump.client_key().display(),
            jump.host()
        );
        let options = format!("{SSH_OPTIONS} -o ProxyCommand=\"{proxy}\"");
        self.routes.insert(index, (name, options));
    }

    pub fn len(&self) -> usize {
        1 + self.more.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The inventory: group `routers`, each host with the ssh settings Ansible (and through the
    /// collection, update.sh) uses for it.
    pub fn inventory(&self) -> PathBuf {
        let mut hosts = serde_json::Map::new();
        for (i, (name, _, sshd)) in self.members().into_iter().enumerate() {
            let port = self
                .ports
                .as_ref()
                .and_then(|p| p.get(i).copied())
                .unwrap_or(sshd.port());
            let (address, options) = self
                .routes
                .get(&i)
                .map(|(a, o)| (a.as_str(), o.as_str()))
                .unwrap_or(("127.0.0.1", SSH_OPTIONS));
            hosts.insert(
                name,
                serde_json::json!({
                    "ansible_host": address,
                    "ansible_port": port,
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": sshd.client_key(),
                    "ansible_ssh_common_args": options,
                }),
            );
        }
        let inv = serde_json::json!({"routers": {"hosts": hosts}});
        let path = self.dir.path().join("inventory.yml");
        std::fs::write(&path, inv.to_string()).expect("inventory");
        path
    }

    /// Runs one task of the collection on every device (`ansible routers -m MODULE -a ARGS -o`);
    /// returns each host's result as Ansible printed it, by host name, with `ansible_state`
    /// (`SUCCESS`, `CHANGED`, `FAILED!`). `args` are added.
    pub fn task(
        &self,
        module: &str,
        module_args: &str,
        args: &[&str],
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut cmd = Command::new("ansible");
        cmd.arg("routers")
            .arg("-i")
            .arg(self.inventory())
            .args(["-o", "-m", module, "-a", module_args])
            .args(args);
        let output = self
            .ansible_env(&mut cmd)
            .output()
            .expect("cannot run ansible");
        let out = String::from_utf8_lossy(&output.stdout);
        // `-o`: one line per host, `NAME | STATE => {JSON}`.
        out.lines()
            .filter_map(|l| {
                let (head, json) = l.split_once(" => ")?;
                let (host, state) = head.split_once(" | ")?;
                let mut result: serde_json::Value = serde_json::from_str(json).ok()?;
                // Ansible says `SUCCESS`, `CHANGED` or `FAILED!` in the line, not in the JSON.
                result["ansible_state"] = state.trim().into();
                Some((host.trim().to_owned(), result))
            })
            .collect()
    }

    fn ansible_env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        ansible_env(cmd, self.dir.path())
    }

    /// Runs `ansible-playbook` on one of the collection's playbooks with `vars` as extra
    /// variables; `args` are added (e.g. `--check`, `-f 10`).
    pub fn playbook(&self, playbook: &str, vars: &serde_json::Value, args: &[&str]) -> Run {
        let summary = self.dir.path().join("summary.json");
        let _ = std::fs::remove_file(&summary);
        let book = collection_dir().join("playbooks").join(playbook);
        let started = Instant::now();
        let mut cmd = Command::new("ansible-playbook");
        cmd.arg("-i")
            .arg(self.inventory())
            .arg(&book)
            .arg("-e")
            .arg(vars.to_string())
            .args(args)
            .env("LIMINIX_FLEET_SUMMARY", &summary);
        let output = self
            .ansible_env(&mut cmd)
            .output()
            .expect("cannot run ansible-playbook (scripts/setup.sh installs ansible-core)");
        let seconds = started.elapsed().as_secs_f64();
        let summary = match std::fs::read(&summary) {
            Ok(bytes) => serde_json::from_slice(&bytes).expect("summary JSON"),
            Err(_) => Vec::new(),
        };
        Run {
            output,
            summary,
            seconds,
        }
    }
}

/// `liminix-agent status --json` of one device, over its sshd.
pub fn status(sshd: &SshServer) -> serde_json::Value {
    let o = sshd.ssh_run("liminix-agent status --json");
    assert!(o.status.success(), "status: {}", text(&o));
    serde_json::from_slice(&o.stdout).expect("status JSON")
}

/// The environment every Ansible run here has: the collection's `ansible.cfg`, the collection
/// linked below `dir/collections` (see [`link_collection`]), control sockets and temporary files
/// in `dir`, no colours, a UTF-8 locale (Ansible refuses others).
pub fn ansible_env<'a>(cmd: &'a mut Command, dir: &Path) -> &'a mut Command {
    cmd.env(
        "ANSIBLE_CONFIG",
        collection_dir().join("playbooks/ansible.cfg"),
    )
    .env("ANSIBLE_COLLECTIONS_PATH", dir.join("collections"))
    .env("ANSIBLE_SSH_CONTROL_PATH_DIR", dir.join("cp"))
    .env("ANSIBLE_LOCAL_TEMP", dir.join("tmp"))
    .env("ANSIBLE_NOCOLOR", "1")
    .env("LC_ALL", "C.UTF-8")
}

/// Links the collection into `dir/collections` as `liminix.update`.
///
/// # Panics
/// If the link cannot be made.
pub fn link_collection(dir: &Path) {
    let link = dir.join("collections/ansible_collections/liminix");
    std::fs::create_dir_all(&link).expect("collections path");
    std::os::unix::fs::symlink(collection_dir(), link.join("update")).expect("collection link");
}

/// Runs the rolling-update playbook against one router, `router` in group `routers` with the
/// inventory variables `host`, with `vars` as extra variables and `args` added; `dir` holds the
/// inventory, the summary and what [`ansible_env`] puts there ([`link_collection`] first).
/// Returns the output (also printed) and the summary rows.
///
/// # Panics
/// If `ansible-playbook` cannot be started or its summary is not JSON.
pub fn rolling_update_of_one(
    dir: &Path,
    host: serde_json::Value,
    vars: &serde_json::Value,
    args: &[&str],
) -> (Output, Vec<Row>) {
    let inventory = dir.join("inventory.yml");
    let inv = serde_json::json!({"routers": {"hosts": {"router": host}}});
    std::fs::write(&inventory, inv.to_string()).expect("inventory");
    let summary = dir.join("summary.json");
    let _ = std::fs::remove_file(&summary);
    let mut cmd = Command::new("ansible-playbook");
    cmd.arg("-i")
        .arg(&inventory)
        .arg(collection_dir().join("playbooks/rolling-update.yml"))
        .arg("-e")
        .arg(vars.to_string())
        .args(args)
        .env("LIMINIX_FLEET_SUMMARY", &summary);
    let o = ansible_env(&mut cmd, dir)
        .output()
        .expect("cannot run ansible-playbook (scripts/setup.sh installs ansible-core)");
    let rows = std::fs::read(&summary)
        .map(|b| serde_json::from_slice(&b).expect("summary JSON"))
        .unwrap_or_default();
    eprintln!("==== ansible-playbook {args:?} ====\n{}", text(&o));
    (o, rows)
}
