//! The writable-root guest: an x86_64 machine that boots like a Liminix board whose root
//! filesystem is writable (ext4 on a virtio disk). Preinit mounts it as /persist, runs the
//! current generation's `activate` and execs its `init` (or generation N's, when the command
//! line says `liminix.trial=N`); s6-svscan with dropbear answers the host's ssh through a
//! forwarded loopback port. The kernel and preinit are also in the store (`/boot/kernel`,
//! `/boot/initramfs`), so the agent can kexec them.
//!
//! - [`system`]: the store (a base path and one toplevel per generation), the preinit, the
//!   ext4 image;
//! - [`Guest`]: the running machine: console, boot banners, ssh, `SSH_COMMAND` for update.sh.
//!
//! The ssh keys and the root tree come from [`crate::router`]; resets stay inside the QEMU
//! process, and `panic=1` turns a kernel panic into a reset, as a router's watchdog would.

pub mod system;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::router::{Keys, Ssh};
use crate::VmError;

/// Every boot's banner line starts with this, then the generation's label.
pub const BOOT_PREFIX: &str = "LIMINIX-WRITABLE-BOOT";
/// The health service's console line after `mark-good` ran, followed by ` rc=N`.
pub const MARK_GOOD: &str = "LIMINIX-MARK-GOOD";
/// The preinit's line before it powers off when it cannot mount the root.
pub const PREINIT_FAILED: &str = "LIMINIX-PREINIT-FAILED";

/// A running writable-root guest.
pub struct Guest {
    child: Child,
    serial: Arc<Mutex<Vec<u8>>>,
    port: u16,
    files: tempfile::TempDir,
    client_key: PathBuf,
}

fn free_port() -> Result<u16, VmError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(VmError::io(Path::new("127.0.0.1:0")))?;
    let addr = l
        .local_addr()
        .map_err(VmError::io(Path::new("127.0.0.1:0")))?;
    Ok(addr.port())
}

fn spawn_reader(mut out: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = out.read(&mut chunk) {
            if n == 0 {
                break;
            }
            match sink.lock() {
                Ok(mut b) => b.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
    });
}

impl Guest {
    /// Boots `kernel` with `initrd` (the preinit) and the ext4 `disk`, with 512 MiB (room for
    /// a second kernel and initramfs loaded by kexec), trusting only `keys`' host key.
    pub fn boot(kernel: &Path, initrd: &[u8], disk: &Path, keys: &Keys) -> Result<Self, VmError> {
        let files = tempfile::Builder::new()
            .prefix("liminix-writable")
            .tempdir()
            .map_err(VmError::io(Path::new("tempdir")))?;
        let initrd_path = files.path().join("preinit.cpio");
        std::fs::write(&initrd_path, initrd).map_err(VmError::io(&initrd_path))?;
        let port = free_port()?;
        let known = files.path().join("known_hosts");
        let line = format!("[127.0.0.1]:{port} {}\n", keys.host_public);
        std::fs::write(&known, line).map_err(VmError::io(&known))?;
        let mut child = Command::new("qemu-system-x86_64")
            .args(qemu_args(kernel, &initrd_path, disk, port))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => VmError::MissingTool {
                    tool: "qemu-system-x86_64".into(),
                    package: "qemu-system-x86",
                },
                _ => VmError::Command {
                    command: "qemu-system-x86_64".into(),
                    detail: e.to_string(),
                },
            })?;
        let serial = Arc::new(Mutex::new(Vec::new()));
        spawn_reader(child.stdout.take().expect("piped stdout"), serial.clone());
        spawn_reader(child.stderr.take().expect("piped stderr"), serial.clone());
        Ok(Guest {
            child,
            serial,
            port,
            files,
            client_key: keys.client_key.clone(),
        })
    }

    /// The serial console so far, CRs removed.
    pub fn serial(&self) -> String {
        let raw = self.serial.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&raw).replace('\r', "")
    }

    /// The boot banners so far (what follows [`BOOT_PREFIX`]), one per boot that got that far.
    pub fn banners(&self) -> Vec<String> {
        self.serial()
            .lines()
            .filter_map(|l| l.split_once(BOOT_PREFIX))
            .map(|(_, b)| b.trim().to_string())
            .collect()
    }

    fn fail(&mut self, what: &str, timeout: Duration, start: Instant) -> Option<VmError> {
        if self.serial().contains(PREINIT_FAILED) {
            return Some(VmError::Command {
                command: "writable preinit".into(),
                detail: self.serial(),
            });
        }
        if let Some(status) = self.child.try_wait().ok().flatten() {
            return Some(VmError::Command {
                command: format!("qemu-system-x86_64 (waiting for {what})"),
                detail: format!("exited {status}; serial:\n{}", self.serial()),
            });
        }
        (start.elapsed() > timeout).then(|| VmError::Timeout {
            secs: timeout.as_secs(),
            serial: format!("waiting for {what}\n{}", self.serial()),
        })
    }

    /// Waits until `n` banners have appeared; returns them.
    pub fn wait_for_boot(&mut self, n: usize, timeout: Duration) -> Result<Vec<String>, VmError> {
        let start = Instant::now();
        loop {
            let b = self.banners();
            if b.len() >= n {
                return Ok(b);
            }
            if let Some(e) = self.fail(&format!("boot {n}"), timeout, start) {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the console holds `text` `n` times.
    pub fn wait_for_console(
        &mut self,
        text: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<(), VmError> {
        let start = Instant::now();
        loop {
            if self.serial().matches(text).count() >= n {
                return Ok(());
            }
            if let Some(e) = self.fail(text, timeout, start) {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until ssh runs a command.
    pub fn wait_for_ssh(&mut self, timeout: Duration) -> Result<(), VmError> {
        let start = Instant::now();
        loop {
            let r = self.ssh("true")?;
            if r.success() {
                return Ok(());
            }
            let what = format!("ssh (last error: {})", r.stderr.trim());
            if let Some(e) = self.fail(&what, timeout, start) {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `SSH_COMMAND` for update.sh: the host's OpenSSH client with this guest's port, the
    /// client key and a known_hosts holding only the guest's key.
    pub fn ssh_command(&self) -> String {
        let known = self.files.path().join("known_hosts");
        format!(
            "ssh -i {} -p {} -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} \
             -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=5 \
             -o IdentitiesOnly=yes -o LogLevel=ERROR",
            self.client_key.display(),
            self.port,
            known.display()
        )
    }

    /// The host argument that goes with [`Self::ssh_command`].
    pub fn host(&self) -> &'static str {
        "root@127.0.0.1"
    }

    fn ssh_process(&self, command: &str) -> Command {
        let line = self.ssh_command();
        let mut words = line.split_whitespace();
        let mut cmd = Command::new(words.next().unwrap_or("ssh"));
        cmd.args(words).arg(self.host()).arg(command);
        cmd
    }

    /// Runs `command` on the guest, with `input` on its stdin when given.
    pub fn ssh_input(&self, command: &str, input: Option<&Path>) -> Result<Ssh, VmError> {
        let stdin = match input {
            Some(p) => Stdio::from(std::fs::File::open(p).map_err(VmError::io(p))?),
            None => Stdio::null(),
        };
        let out = self
            .ssh_process(command)
            .stdin(stdin)
            .output()
            .map_err(|e| VmError::Command {
                command: format!("ssh {command}"),
                detail: e.to_string(),
            })?;
        Ok(Ssh {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    pub fn ssh(&self, command: &str) -> Result<Ssh, VmError> {
        self.ssh_input(command, None)
    }

    /// [`Self::ssh`] of a command that must succeed; its stdout.
    pub fn ssh_ok(&self, command: &str) -> Result<String, VmError> {
        let r = self.ssh(command)?;
        if r.success() {
            return Ok(r.stdout);
        }
        Err(VmError::Command {
            command: format!("ssh {command}"),
            detail: format!(
                "exit {:?}\nstdout: {}\nstderr: {}",
                r.code, r.stdout, r.stderr
            ),
        })
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn qemu_args(kernel: &Path, initrd: &Path, disk: &Path, port: u16) -> Vec<String> {
    let mut args: Vec<String> = ["-accel", "tcg", "-nographic", "-m", "512"]
        .map(String::from)
        .to_vec();
    args.extend(["-kernel".into(), kernel.display().to_string()]);
    args.extend(["-initrd".into(), initrd.display().to_string()]);
    args.extend([
        "-append".into(),
        "console=ttyS0 quiet panic=1".into(),
        "-drive".into(),
        format!(
            "file={},format=raw,if=virtio,cache=writethrough",
            disk.display()
        ),
        "-netdev".into(),
        format!("user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22"),
        "-device".into(),
        "virtio-net-pci,netdev=net0,romfile=".into(),
        "-device".into(),
        "virtio-rng-pci".into(),
    ]);
    args
}
