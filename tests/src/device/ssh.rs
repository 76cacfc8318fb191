//! A real OpenSSH sshd on 127.0.0.1 whose sessions run inside a device chroot.
//!
//! Root logs in (key only) because that is how Liminix is administered and
//! because the agent must act as root on the device: create store paths,
//! replace `/persist` links, call s6-rc. `ChrootDirectory` then confines the
//! session to the device root, so the host is never the target. sshd runs
//! the account's shell from the *host* passwd inside the chroot, which is
//! why the device gets a `sh` wrapper at that path.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use super::rootfs::{io, mkdir_mode, write_mode};
use super::{Device, DeviceError};

const SSHD: &str = "/usr/sbin/sshd";

#[derive(Debug)]
pub struct SshServer {
    child: Child,
    port: u16,
    client_key: PathBuf,
    log: PathBuf,
}

fn keygen(path: &Path) -> Result<(), DeviceError> {
    let _ = fs::remove_file(path);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "liminix-tests", "-f"])
        .arg(path)
        .output()
        .map_err(io(Path::new("ssh-keygen")))?;
    if !out.status.success() {
        let detail = String::from_utf8_lossy(&out.stderr).into_owned();
        return Err(DeviceError::Command {
            what: "ssh-keygen".into(),
            detail,
        });
    }
    Ok(())
}

fn free_port() -> Result<u16, DeviceError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io(Path::new("127.0.0.1:0")))?;
    let port = l.local_addr().map_err(io(Path::new("127.0.0.1:0")))?.port();
    Ok(port)
}

fn config(dir: &Path, root: &Path, port: u16, forwarding: bool) -> String {
    // A jump host logs at DEBUG1, the level at which sshd names each forwarded connection's
    // target (`server_request_direct_tcpip`).
    let (forwarding, level) = if forwarding {
        ("local", "DEBUG1")
    } else {
        ("no", "VERBOSE")
    };
    format!(
        "Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_ed25519
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile {dir}/authorized_keys
ChrootDirectory {root}
UsePAM no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding {forwarding}
PermitTunnel no
MaxStartups 64
MaxSessions 64
Subsystem sftp internal-sftp
LogLevel {level}
",
        dir = dir.display(),
        root = root.display(),
    )
}

impl SshServer {
    /// Start sshd for `device` and wait until it answers with its banner.
    pub fn start(device: &Device) -> Result<SshServer, DeviceError> {
        Self::start_with(device, false)
    }

    /// Like [`SshServer::start`], but the server also forwards TCP connections its clients ask
    /// for (`ssh -W`, `-J`): a jump host in front of devices.
    pub fn start_jump_host(device: &Device) -> Result<SshServer, DeviceError> {
        Self::start_with(device, true)
    }

    fn start_with(device: &Device, forwarding: bool) -> Result<SshServer, DeviceError> {
        mkdir_mode(Path::new("/run/sshd"), 0o755)?;
        let dir = device.state_dir().join("ssh");
        mkdir_mode(&dir, 0o700)?;
        keygen(&dir.join("host_ed25519"))?;
        let client_key = dir.join("client_ed25519");
        keygen(&client_key)?;
        let public = fs::read(dir.join("client_ed25519.pub")).map_err(io(&dir))?;
        write_mode(&dir.join("authorized_keys"), &public, 0o600)?;
        let mut last = String::new();
        // The port can be taken between probing and sshd's bind; retry.
        for _ in 0..5 {
            match Self::spawn(&dir, device.root(), client_key.clone(), forwarding) {
                Ok(server) => return Ok(server),
                Err(DeviceError::Sshd(why)) => last = why,
                Err(e) => return Err(e),
            }
        }
        Err(DeviceError::Sshd(last))
    }

    fn spawn(
        dir: &Path,
        root: &Path,
        client_key: PathBuf,
        forwarding: bool,
    ) -> Result<SshServer, DeviceError> {
        let port = free_port()?;
        let conf = dir.join("sshd_config");
        write_mode(&conf, config(dir, root, port, forwarding).as_bytes(), 0o600)?;
        let log = dir.join(format!("sshd-{port}.log"));
        // -E rather than -e: with -e, session processes log to the stderr
        // they hand to the client's channel.
        let child = Command::new(SSHD)
            .args(["-D", "-f"])
            .arg(&conf)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io(Path::new(SSHD)))?;
        let mut server = SshServer {
            child,
            port,
            client_key,
            log,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), DeviceError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(DeviceError::Sshd(format!(
                    "sshd exited with {status}: {}",
                    self.log_text()
                )));
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut banner = [0u8; 8];
                if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0-" {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(DeviceError::Sshd(format!(
            "no banner on port {}: {}",
            self.port,
            self.log_text()
        )))
    }

    /// sshd's own log (`-E` file; `LogLevel VERBOSE`, `DEBUG1` on a jump host), for diagnosing failures.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `root@127.0.0.1`
    pub fn host(&self) -> String {
        "root@127.0.0.1".to_string()
    }

    /// The client's private key (its public half is the only authorized key).
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// ssh argv (without host and command), for `Command::new("ssh").args(…)`.
    pub fn ssh_args(&self) -> Vec<String> {
        let mut v = vec![
            "-F".into(),
            "/dev/null".into(),
            "-p".into(),
            self.port.to_string(),
            "-i".into(),
        ];
        v.push(self.client_key.display().to_string());
        for o in [
            "IdentitiesOnly=yes",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
            "BatchMode=yes",
        ] {
            v.push("-o".into());
            v.push(o.into());
        }
        v
    }

    /// A shell-ready `ssh …` command line for the client's `SSH_COMMAND`.
    pub fn ssh_command(&self) -> String {
        format!("ssh {}", self.ssh_args().join(" "))
    }

    /// Run `cmd` on the device through ssh.
    ///
    /// # Panics
    /// If the `ssh` client cannot be started at all.
    pub fn ssh_run(&self, cmd: &str) -> Output {
        Command::new("ssh")
            .args(self.ssh_args())
            .arg(self.host())
            .arg(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run ssh")
    }
}

/// Every process descended from `pid` (sshd's per-connection children call
/// setsid, so they are not in its process group).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // The ppid is the second field after the parenthesised command name.
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
        {
            parents.push((p, ppid.parse().unwrap_or(0)));
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        out.extend(parents.iter().filter(|(_, pp)| *pp == cur).map(|(p, _)| *p));
        i += 1;
    }
    out.remove(0);
    out
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let sessions = descendants(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for p in sessions {
            if let Some(pid) = i32::try_from(p).ok().and_then(Pid::from_raw) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
    }
}
