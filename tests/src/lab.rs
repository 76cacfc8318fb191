//! A lab bench for closure updates: a build host side (a store root with generated closures, a
//! signing key, `liminix-pack`) and a device side (a [`Device`] chroot behind a real sshd), wired
//! together through `update.sh` and `SSH_COMMAND` exactly as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::closure::{self, Change, Closure, ClosureSpec};
use crate::device::{pack_binary, test_agents_dir, Device, SshServer};

pub struct Lab {
    pub host: tempfile::TempDir,
    pub device: Device,
    pub sshd: SshServer,
    pub secret: PathBuf,
    pub public: PathBuf,
}

/// Bundle options that tests vary.
#[derive(Clone, Debug)]
pub struct Pack {
    pub board: String,
    pub epoch: u64,
    /// Sign with this secret key instead of the lab's trusted one.
    pub key: Option<PathBuf>,
    /// zstd level (tests use a fast one; the benchmark uses the packer's default, 19).
    pub level: i32,
}

impl Default for Pack {
    fn default() -> Self {
        Pack {
            board: "qemu".into(),
            epoch: 0,
            key: None,
            level: 3,
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Lab {
    /// A device with the agent, reachable over ssh, trusting a fresh key.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Lab {
        Lab::with_device(Device::new().expect("device"))
    }

    pub fn with_device(device: Device) -> Lab {
        let host = tempfile::tempdir().expect("tempdir");
        let sshd = SshServer::start(&device).expect("sshd");
        let secret = host.path().join("signing.sec");
        let public = host.path().join("signing.pub");
        let o = run(Command::new(pack_binary())
            .args(["keygen", "--secret"])
            .arg(&secret)
            .arg("--public")
            .arg(&public));
        assert!(o.status.success(), "keygen: {}", text(&o));
        device
            .install_trusted_key("lab.pub", &std::fs::read(&public).unwrap())
            .unwrap();
        Lab {
            host,
            device,
            sshd,
            secret,
            public,
        }
    }

    pub fn store_root(&self) -> &Path {
        self.host.path()
    }

    pub fn generate(&self, spec: &ClosureSpec) -> Closure {
        closure::generate(self.store_root(), spec).expect("generate closure")
    }

    pub fn derive(&self, base: &Closure, services: &[&str], fraction: f64, seed: u64) -> Closure {
        let change = Change {
            changed_fraction: fraction,
            changed_services: services.iter().map(|s| s.to_string()).collect(),
            seed,
        };
        closure::derive(self.store_root(), base, &change).expect("derive closure")
    }

    /// `liminix-pack updater` carrying the x86_64 agent: returns the path of the generated
    /// `update.sh`.
    pub fn updater(&self, c: &Closure, p: &Pack) -> PathBuf {
        self.updater_carrying(c, p, "x86_64")
    }

    /// `liminix-pack updater --agents CPUS`, the agents taken from [`test_agents_dir`].
    pub fn updater_carrying(&self, c: &Closure, p: &Pack, cpus: &str) -> PathBuf {
        let out = self
            .host
            .path()
            .join(format!("updater-{}", &c.toplevel[11..19]));
        let _ = std::fs::remove_dir_all(&out);
        let key = p.key.clone().unwrap_or_else(|| self.secret.clone());
        let o = run(Command::new(pack_binary())
            .args(["updater", "--toplevel", &c.toplevel, "--board", &p.board])
            .args(["--level", &p.level.to_string()])
            .args(["--epoch", &p.epoch.to_string()])
            .arg("--store-root")
            .arg(self.store_root())
            .arg("--key")
            .arg(&key)
            .args(["--agents", cpus])
            .arg("--agents-dir")
            .arg(test_agents_dir())
            .arg("--out")
            .arg(&out));
        assert!(o.status.success(), "liminix-pack updater: {}", text(&o));
        out.join("bin/update.sh")
    }

    pub fn bundle_of(update_sh: &Path) -> PathBuf {
        update_sh
            .parent()
            .unwrap()
            .join("../share/liminix/system.bundle")
    }

    /// Runs `update.sh ARGS` with the lab's SSH_COMMAND; `host` is appended when `args` lacks it.
    pub fn update(&self, update_sh: &Path, args: &[&str]) -> Output {
        self.update_with_ssh(update_sh, args, &self.sshd.ssh_command())
    }

    pub fn update_with_ssh(&self, update_sh: &Path, args: &[&str], ssh: &str) -> Output {
        let host = self.sshd.host();
        let mut cmd = Command::new(update_sh);
        cmd.args(args);
        if !args.contains(&host.as_str()) {
            cmd.arg(&host);
        }
        run(cmd.env("SSH_COMMAND", ssh))
    }

    /// Runs `liminix-agent ARGS` on the device over ssh.
    pub fn agent(&self, args: &str) -> Output {
        self.sshd.ssh_run(&format!("liminix-agent {args}"))
    }

    /// `liminix-agent status --json` on the device.
    pub fn status(&self) -> serde_json::Value {
        let o = self.agent("status --json");
        assert!(o.status.success(), "status: {}", text(&o));
        serde_json::from_slice(&o.stdout).expect("status JSON")
    }
}

impl Lab {
    /// Pipes a bundle file into `liminix-agent receive ARGS` over ssh, as a user could by hand.
    pub fn receive_file(&self, bundle: &Path, args: &str) -> Output {
        let stdin = std::fs::File::open(bundle).expect("bundle");
        run(Command::new("ssh")
            .args(self.sshd.ssh_args())
            .arg(self.sshd.host())
            .arg(format!("liminix-agent receive {args}"))
            .stdin(stdin))
    }
}
