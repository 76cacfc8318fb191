//! A running router: one QEMU process the host talks to over ssh while it runs. Resets are
//! kept inside the process (no `-no-reboot`), so a reboot is seen as another boot banner on
//! the serial console; a power-off ends the process; a power cut is SIGKILL.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::flash::Layout;
use super::keys::Keys;
use super::{preinit, BANNER_PREFIX, PREINIT_FAILED};
use crate::kernel::{find_kernel, Kernel};
use crate::VmError;

/// What one ssh command returned.
#[derive(Debug, Clone)]
pub struct Ssh {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ssh {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A router guest booted from a flash disk.
pub struct Router {
    child: Child,
    serial: Arc<Mutex<Vec<u8>>>,
    port: u16,
    client_key: PathBuf,
    files: tempfile::TempDir,
    started: Instant,
}

/// A loopback port nobody listens on now (QEMU binds it a moment later).
fn free_port() -> Result<u16, VmError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(VmError::io(Path::new("127.0.0.1:0")))?;
    let addr = l
        .local_addr()
        .map_err(VmError::io(Path::new("127.0.0.1:0")))?;
    Ok(addr.port())
}

/// Appends everything `out` yields to `sink` until it closes.
fn spawn_reader(mut out: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) {
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

impl Router {
    /// Boots the host's kernel with the preinit for `layout`, the flash `disk` and a user-mode
    /// network whose loopback port forwards to the guest's ssh, accepting only `keys`' host key.
    pub fn boot(disk: &Path, layout: &Layout, keys: &Keys) -> Result<Self, VmError> {
        Self::boot_with(disk, layout, keys, None)
    }

    /// [`boot`](Self::boot) with the flash disk's writes limited to `write_bytes_per_sec`
    /// (QEMU's throttling): block2mtd's written pages then reach the disk at a NOR chip's
    /// pace, so a power cut can land in the middle of a write.
    pub fn boot_with(
        disk: &Path,
        layout: &Layout,
        keys: &Keys,
        write_bytes_per_sec: Option<u64>,
    ) -> Result<Self, VmError> {
        let kernel = find_kernel()?;
        Self::boot_kernel(&kernel, disk, layout, keys, write_bytes_per_sec)
    }

    /// [`boot`](Self::boot) with ramoops (pstore) on: its region reserved on the command line
    /// and the module loaded by the preinit ([`super::trial::PSTORE_APPEND`]), so a panic's
    /// kernel log outlives the reset.
    pub fn boot_with_pstore(disk: &Path, layout: &Layout, keys: &Keys) -> Result<Self, VmError> {
        let kernel = find_kernel()?;
        let cpio = preinit::initramfs_with(&kernel, layout, super::trial::PSTORE_MODULES)?;
        let extra = Extra {
            preinit: Some(cpio),
            append: super::trial::PSTORE_APPEND,
        };
        Self::spawn(&kernel, disk, keys, None, extra)
    }

    fn boot_kernel(
        kernel: &Kernel,
        disk: &Path,
        layout: &Layout,
        keys: &Keys,
        write_bytes_per_sec: Option<u64>,
    ) -> Result<Self, VmError> {
        let cpio = preinit::initramfs(kernel, layout)?;
        let extra = Extra {
            preinit: Some(cpio),
            append: "",
        };
        Self::spawn(kernel, disk, keys, write_bytes_per_sec, extra)
    }

    fn spawn(
        kernel: &Kernel,
        disk: &Path,
        keys: &Keys,
        write_bytes_per_sec: Option<u64>,
        extra: Extra,
    ) -> Result<Self, VmError> {
        let files = tempfile::Builder::new()
            .prefix("liminix-router")
            .tempdir()
            .map_err(VmError::io(Path::new("tempdir")))?;
        let initrd = files.path().join("preinit.cpio");
        let cpio = extra.preinit.unwrap_or_default();
        std::fs::write(&initrd, cpio).map_err(VmError::io(&initrd))?;
        let port = free_port()?;
        let known = files.path().join("known_hosts");
        let line = format!("[127.0.0.1]:{port} {}\n", keys.host_public);
        std::fs::write(&known, line).map_err(VmError::io(&known))?;
        let mut child = Command::new("qemu-system-x86_64")
            .args(qemu_args(kernel, &initrd, disk, port, write_bytes_per_sec))
            .args(append_words(extra.append))
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
        // QEMU's stderr joins the console: a port it cannot bind shows up with the rest.
        spawn_reader(child.stderr.take().expect("piped stderr"), serial.clone());
        Ok(Router {
            child,
            serial,
            port,
            client_key: keys.client_key.clone(),
            files,
            started: Instant::now(),
        })
    }

    /// The serial console so far, CRs removed.
    pub fn serial(&self) -> String {
        let raw = self.serial.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&raw).replace('\r', "")
    }

    /// The boot banners seen so far (`LIMINIX-ROUTER-BOOT <banner>`), one per boot.
    pub fn banners(&self) -> Vec<String> {
        self.serial()
            .lines()
            // The firmware's console reset sequences may precede the banner on its line.
            .filter_map(|l| l.split_once(BANNER_PREFIX))
            .map(|(_, b)| b.trim().to_string())
            .collect()
    }

    /// The loopback port forwarded to the guest's port 22.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn timeout(&self, what: &str, secs: u64) -> VmError {
        VmError::Timeout {
            secs,
            serial: format!("waiting for {what}\n{}", self.serial()),
        }
    }

    fn died(&self, status: std::process::ExitStatus, what: &str) -> VmError {
        VmError::Command {
            command: format!("qemu-system-x86_64 (waiting for {what})"),
            detail: format!("exited {status}; serial:\n{}", self.serial()),
        }
    }

    /// Waits until `boots` banners have appeared; returns the time since QEMU started.
    pub fn wait_for_boot(&mut self, boots: usize, timeout: Duration) -> Result<Duration, VmError> {
        let start = Instant::now();
        loop {
            if self.banners().len() >= boots {
                return Ok(self.started.elapsed());
            }
            if self.serial().contains(PREINIT_FAILED) {
                return Err(VmError::Command {
                    command: "router preinit".into(),
                    detail: self.serial(),
                });
            }
            if let Some(status) = self.exited() {
                return Err(self.died(status, &format!("boot {boots}")));
            }
            if start.elapsed() > timeout {
                return Err(self.timeout(&format!("boot {boots}"), timeout.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a console line after the first `skip` bytes contains `text`; returns the
    /// time this call waited.
    pub fn wait_for_console(
        &mut self,
        text: &str,
        skip: usize,
        timeout: Duration,
    ) -> Result<Duration, VmError> {
        let start = Instant::now();
        loop {
            let serial = self.serial();
            if serial.get(skip..).is_some_and(|s| s.contains(text)) {
                return Ok(start.elapsed());
            }
            if let Some(status) = self.exited() {
                return Err(self.died(status, text));
            }
            if start.elapsed() > timeout {
                return Err(self.timeout(text, timeout.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until ssh runs a command; returns how long that took from this call.
    pub fn wait_for_ssh(&mut self, timeout: Duration) -> Result<Duration, VmError> {
        let start = Instant::now();
        loop {
            let r = self.ssh("true")?;
            if r.success() {
                return Ok(start.elapsed());
            }
            if let Some(status) = self.exited() {
                return Err(self.died(status, "ssh"));
            }
            if start.elapsed() > timeout {
                let what = format!("ssh (last error: {})", r.stderr.trim());
                return Err(self.timeout(&what, timeout.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Runs `command` as root through the host's OpenSSH client. The host key must be the
    /// one in this test's known_hosts (StrictHostKeyChecking=yes): a changed key fails.
    pub fn ssh(&self, command: &str) -> Result<Ssh, VmError> {
        let out = self
            .ssh_command(command)
            .output()
            .map_err(|e| VmError::Command {
                command: format!("ssh {command}"),
                detail: e.to_string(),
            })?;
        Ok(ssh_result(out))
    }

    /// [`ssh`](Self::ssh) of a command that must succeed; its stdout.
    pub fn ssh_ok(&self, command: &str) -> Result<String, VmError> {
        let r = self.ssh(command)?;
        if r.success() {
            return Ok(r.stdout);
        }
        Err(VmError::Command {
            command: format!("ssh root@router {command}"),
            detail: format!(
                "exit {:?}\nstdout: {}\nstderr: {}",
                r.code, r.stdout, r.stderr
            ),
        })
    }

    /// Runs `command` with `input` on its stdin; its stdout.
    pub fn ssh_with_input(&self, command: &str, input: &[u8]) -> Result<String, VmError> {
        let err = |detail: String| VmError::Command {
            command: format!("ssh root@router {command}"),
            detail,
        };
        let mut child = self
            .ssh_command(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(e.to_string()))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let written = stdin.write_all(input);
        drop(stdin);
        let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
        written.map_err(|e| err(format!("writing stdin: {e}")))?;
        let r = ssh_result(out);
        if !r.success() {
            return Err(err(format!("exit {:?}: {}", r.code, r.stderr)));
        }
        Ok(r.stdout)
    }

    /// [`ssh`](Self::ssh) trusting `host_public` instead of the router's key: shows that a
    /// host key other than the one in known_hosts is refused.
    pub fn with_known_host(&self, host_public: &str, command: &str) -> Result<Ssh, VmError> {
        let known = self.files.path().join("other_known_hosts");
        let line = format!("[127.0.0.1]:{} {host_public}\n", self.port);
        std::fs::write(&known, line).map_err(VmError::io(&known))?;
        let out = self
            .ssh_command_with(command, &known)
            .output()
            .map_err(|e| VmError::Command {
                command: format!("ssh {command}"),
                detail: e.to_string(),
            })?;
        Ok(ssh_result(out))
    }

    fn ssh_command(&self, command: &str) -> Command {
        self.ssh_command_with(command, &self.files.path().join("known_hosts"))
    }

    fn ssh_command_with(&self, command: &str, known: &Path) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-i")
            .arg(&self.client_key)
            .args(["-p", &self.port.to_string()])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .args(["-o", "GlobalKnownHostsFile=/dev/null"])
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"])
            .args(["-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"])
            .arg("root@127.0.0.1")
            .arg(command)
            .stdin(Stdio::null());
        cmd
    }

    /// `poweroff -f` in the guest (busybox syncs first), then waits for QEMU to exit;
    /// returns the serial console.
    pub fn power_off(mut self, timeout: Duration) -> Result<String, VmError> {
        // The connection dies with the guest: its result says nothing.
        let _ = self.ssh("poweroff -f");
        let start = Instant::now();
        while self.exited().is_none() {
            if start.elapsed() > timeout {
                return Err(self.timeout("power-off", timeout.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(self.serial())
    }

    /// A power cut: SIGKILL to QEMU, nothing in the guest's RAM reaches the disk. Returns
    /// the serial console.
    pub fn power_cut(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.serial()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a boot adds to the plain one: its preinit archive and command line words.
struct Extra {
    preinit: Option<Vec<u8>>,
    append: &'static str,
}

/// QEMU takes the last `-append`: the plain command line with `extra` after it.
fn append_words(extra: &str) -> Vec<String> {
    match extra.is_empty() {
        true => Vec::new(),
        false => vec!["-append".into(), format!("{BASE_APPEND} {extra}")],
    }
}

fn ssh_result(out: Output) -> Ssh {
    Ssh {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The command line of every boot.
const BASE_APPEND: &str = "console=ttyS0 quiet panic=1";

/// TCG always; resets stay in the process; a panic reboots after a second as a router's
/// watchdog would. The disk is `writethrough` so that what block2mtd syncs is on the host's
/// file when the process is killed (see [`crate::VmBuilder`]'s disks).
fn qemu_args(
    kernel: &Kernel,
    initrd: &Path,
    disk: &Path,
    port: u16,
    write_bytes_per_sec: Option<u64>,
) -> Vec<String> {
    let throttle = write_bytes_per_sec
        .map(|b| format!(",throttling.bps-write={b}"))
        .unwrap_or_default();
    let mut args: Vec<String> = ["-accel", "tcg", "-nographic", "-m", "384"]
        .map(String::from)
        .to_vec();
    args.extend(["-kernel".into(), kernel.image.display().to_string()]);
    args.extend(["-initrd".into(), initrd.display().to_string()]);
    args.extend([
        "-append".into(),
        BASE_APPEND.into(),
        "-drive".into(),
        format!(
            "file={},format=raw,if=virtio,cache=writethrough{throttle}",
            disk.display()
        ),
        "-netdev".into(),
        format!("user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22"),
        // No iPXE option ROM: the firmware would offer network boot and wait for a key.
        "-device".into(),
        "virtio-net-pci,netdev=net0,romfile=".into(),
        "-device".into(),
        "virtio-rng-pci".into(),
    ]);
    args
}
