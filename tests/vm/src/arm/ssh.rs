//! The U-Boot A/B bed of [`ArmBed`] as a router that keeps running: each slot's initramfs
//! brings up the virtio network, runs Debian's armhf dropbear (the host key baked into every
//! slot image, so a reboot into the other slot answers with the same key) and, on a good
//! slot, the health check and `mark-good`. One QEMU process runs without `-no-reboot`, so
//! the agent's `apply --reboot` and a panicking slot reset into U-Boot, which picks the
//! slot; the host reaches the guest's port 22 through QEMU's `hostfwd`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ab_json, machine_args, ArmBed, SlotImage, MODULES, PARTS, QEMU_ARM, SECTOR};
use crate::initramfs::Initramfs;
use crate::router::Keys;
use crate::VmError;

/// The bed's board name (`/etc/liminix/board`) and the board definition a bundle for it is
/// packed against: one slot per disk partition, the whole FAT slot image as `kernel`. The
/// NOR partitions only give the packer its targets and sizes; on the guest, `ab.json`
/// (block devices) says where the slots are.
pub const BOARD: &str = "qemu-arm-ab";
pub const BOARD_TOML: &str = r#"name = "qemu-arm-ab"
description = "QEMU virt (ARMv7) with Debian's U-Boot: A/B slots on a virtio disk"
strategy = "ab-uboot"
cpu = "armv7"

[[flash]]
name = "disk"
type = "nor"
size = 0x2840000
erase_size = 0x10000

  [[flash.partition]]
  name = "u-boot-env"
  offset = 0x0
  size = 0x40000

  [[flash.partition]]
  name = "slot_a"
  offset = 0x40000
  size = 0x1400000

  [[flash.partition]]
  name = "slot_b"
  offset = 0x1440000
  size = 0x1400000

[[image]]
name = "kernel"

[[slot]]
name = "a"
index = 0
targets = { kernel = "mtd:slot_a" }

[[slot]]
name = "b"
index = 1
targets = { kernel = "mtd:slot_b" }

[bootloader]
type = "uboot-env"
fw_env_config = "/etc/fw_env.config"
attempts = 1
"#;

/// What a slot's /init does after the network and dropbear are up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Runs `liminix-agent mark-good` (the board's health check, then the confirmation).
    Good,
    /// Panics before anything else (`panic=-1` resets at once): never confirms.
    Panics,
}

/// Debian armhf packages dropbear needs, and the shared objects the guest gets from them.
const DROPBEAR_DEBS: &[&str] = &[
    "dropbear-bin",
    "libc6",
    "libcrypt1",
    "libtomcrypt1",
    "libtommath1",
    "libgmp10",
    "zlib1g",
];
const DROPBEAR_LIBS: &[&str] = &[
    "ld-linux-armhf.so.3",
    "libc.so.6",
    "libcrypt.so.1",
    "libtomcrypt.so.1",
    "libtommath.so.1",
    "libgmp.so.10",
    "libz.so.1",
];
/// Network and entropy drivers, in load order, after the bed's disk modules (without an
/// entropy source dropbear waits for the kernel's random pool).
const NET_MODULES: &[&str] = &[
    "kernel/drivers/char/hw_random/virtio-rng.ko",
    "kernel/net/core/failover.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/drivers/net/virtio_net.ko",
];

/// Downloads (once, into the cache; never installs) the armhf dropbear and its libraries and
/// unpacks them; returns the unpacked root.
fn dropbear_root() -> Result<PathBuf, VmError> {
    let dir = crate::cache_dir("vm-debian").join("armhf-dropbear");
    let root = dir.join("root");
    if dir.join(".done").exists() {
        return Ok(root);
    }
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).map_err(VmError::io(&debs))?;
    crate::require_program("apt-get", "apt")?;
    let mut get = Command::new("apt-get");
    get.current_dir(&debs).args(["download", "-q"]);
    get.args(DROPBEAR_DEBS.iter().map(|p| format!("{p}:armhf")));
    crate::run_command(&mut get)?;
    for e in std::fs::read_dir(&debs).map_err(VmError::io(&debs))? {
        let deb = e.map_err(VmError::io(&debs))?.path();
        crate::run_command(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
    }
    let done = dir.join(".done");
    std::fs::write(&done, b"").map_err(VmError::io(&done))?;
    Ok(root)
}

/// `name` under the unpacked root's library directories (symlinks followed on copy).
fn find_lib(root: &Path, name: &str) -> Result<PathBuf, VmError> {
    [
        "lib/arm-linux-gnueabihf",
        "usr/lib/arm-linux-gnueabihf",
        "lib",
        "usr/lib",
    ]
    .iter()
    .map(|d| root.join(d).join(name))
    .find(|p| p.exists())
    .ok_or_else(|| VmError::Io {
        path: root.join("lib/arm-linux-gnueabihf").join(name),
        source: std::io::ErrorKind::NotFound.into(),
    })
}

const INIT_NET: &str = r#"i=0
while [ ! -b /dev/vda1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /boot
mount -t vfat /dev/vda1 /boot
echo "AB-GUEST version=$(cat /version) cmdline=$(cat /proc/cmdline)"
"#;

const INIT_PANIC: &str = "echo \"AB-GUEST never confirms: panic\"\necho c > /proc/sysrq-trigger\n";

/// Network, dropbear, the health check, then PID 1 waits for `reboot`/`poweroff` (the agent
/// runs `reboot`): those signal PID 1 (SIGTERM/SIGUSR2), and a shell as init acts on them
/// itself, after a second in which the ssh session that asked gets its answer out.
const INIT_SERVE: &str = r#"mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
rm -f /bin/reboot /bin/poweroff
printf '#!/bin/sh\nkill -TERM 1\n' > /bin/reboot
printf '#!/bin/sh\nkill -USR2 1\n' > /bin/poweroff
chmod 755 /bin/reboot /bin/poweroff
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
dropbear -F -E -s -p 22 -P /tmp/dropbear.pid -r /etc/dropbear/host_key &
down() { sleep 1; sync; umount /boot; echo "AB-GUEST $1"; busybox $1 -f; }
trap 'down reboot' TERM
trap 'down poweroff' USR2
if liminix-agent mark-good; then echo AB-GUEST confirmed; fi
echo AB-GUEST serving
while :; do sleep 1; done
"#;

/// The A/B bed with ssh: its [`ArmBed`] (disk, flash banks), the ssh keys, the trusted
/// signing key and dropbear.
pub struct SshAbBed {
    pub bed: ArmBed,
    pub keys: Keys,
    trusted: Vec<u8>,
    dropbear: PathBuf,
    attempts: u8,
}

impl SshAbBed {
    /// The bed with slot A holding a good ssh system (`a-1`) that trusts `trusted_key`.
    pub fn new(attempts: u8, trusted_key: &Path) -> Result<SshAbBed, VmError> {
        let bed = ArmBed::new(attempts)?;
        let trusted = std::fs::read(trusted_key).map_err(VmError::io(trusted_key))?;
        let me = SshAbBed {
            bed,
            keys: Keys::generate()?,
            trusted,
            dropbear: dropbear_root()?,
            attempts,
        };
        let a = me.slot_image(Health::Good, "a-1")?;
        me.bed.put_partition(1, &a.path)?;
        Ok(me)
    }

    fn initrd(&self, health: Health, version: &str) -> Result<PathBuf, VmError> {
        let mut fs = Initramfs::new();
        for d in [
            "/bin",
            "/proc",
            "/sys",
            "/dev",
            "/tmp",
            "/etc/liminix/trusted-keys",
        ] {
            fs.dir(d);
        }
        fs.copy(&self.bed.debian.busybox, "/bin/busybox")?;
        fs.copy(&self.bed.agent.0, "/bin/liminix-agent")?;
        let mut order = String::new();
        for m in MODULES.iter().chain(NET_MODULES) {
            let name = Path::new(m).file_name().unwrap().to_string_lossy();
            let host = self.bed.debian.kernel.modules_dir.join(m);
            fs.copy(&host, &format!("/lib/modules/{name}"))?;
            order.push_str(&format!("{name}\n"));
        }
        fs.bytes("/lib/modules/order", order.as_bytes(), 0o644);
        fs.bytes("/version", version.as_bytes(), 0o644);
        fs.bytes(
            "/etc/liminix/ab.json",
            ab_json(self.attempts).as_bytes(),
            0o644,
        );
        fs.bytes("/etc/liminix/board", format!("{BOARD}\n").as_bytes(), 0o644);
        fs.bytes("/etc/liminix/board.toml", BOARD_TOML.as_bytes(), 0o644);
        fs.bytes("/etc/liminix/trusted-keys/lab.pub", &self.trusted, 0o644);
        let fw_env = "/boot/uboot.env 0x0 0x4000\n";
        fs.bytes("/etc/fw_env.config", fw_env.as_bytes(), 0o644);
        self.ssh_files(&mut fs)?;
        let body = match health {
            Health::Good => format!("{INIT_NET}{INIT_SERVE}"),
            Health::Panics => format!("{INIT_NET}{INIT_PANIC}"),
        };
        fs.bytes(
            "/init",
            format!("{}{body}", super::INIT_HEAD).as_bytes(),
            0o755,
        );
        fs.symlink("/persist", "/boot/persist");
        let out = self
            .bed
            .dir
            .path()
            .join(format!("ssh-initrd-{version}.cpio"));
        fs.write(&out)?;
        Ok(out)
    }

    /// dropbear with its libraries, the host key, root's account and authorized key.
    fn ssh_files(&self, fs: &mut Initramfs) -> Result<(), VmError> {
        let bin = self.dropbear.join("usr/sbin/dropbear");
        fs.copy(&bin, "/bin/dropbear")?;
        fs.dir("/lib/arm-linux-gnueabihf");
        for lib in DROPBEAR_LIBS {
            let host = find_lib(&self.dropbear, lib)?;
            fs.copy(&host, &format!("/lib/arm-linux-gnueabihf/{lib}"))?;
        }
        fs.symlink(
            "/lib/ld-linux-armhf.so.3",
            "arm-linux-gnueabihf/ld-linux-armhf.so.3",
        );
        fs.dir("/etc/dropbear");
        fs.copy(&self.keys.host_key, "/etc/dropbear/host_key")?;
        fs.bytes("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644);
        fs.bytes("/etc/group", b"root:x:0:\n", 0o644);
        fs.bytes("/etc/shells", b"/bin/sh\n", 0o644);
        fs.dir("/root/.ssh");
        let auth = format!("{}\n", self.keys.client_public);
        fs.bytes("/root/.ssh/authorized_keys", auth.as_bytes(), 0o600);
        Ok(())
    }

    /// A slot image (FAT, the slot partition's size): the kernel and an ssh initramfs.
    pub fn slot_image(&self, health: Health, version: &str) -> Result<SlotImage, VmError> {
        let initrd = self.initrd(health, version)?;
        let path = self.bed.dir.path().join(format!("ssh-slot-{version}.img"));
        let kib = PARTS[1].1 * SECTOR / 1024;
        let kernel = &self.bed.debian.kernel.image;
        super::assets::fat_image(&path, kib, &[("zImage", kernel), ("initrd", &initrd)])?;
        let data = std::fs::read(&path).map_err(VmError::io(&path))?;
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
        Ok(SlotImage { path, sha256 })
    }

    /// Powers the machine on; it runs (resets included) until [`Guest::power_off`] or drop.
    pub fn start(&self) -> Result<Guest, VmError> {
        Guest::start(self)
    }
}

/// The running machine.
pub struct Guest {
    child: Child,
    serial: Arc<Mutex<Vec<u8>>>,
    port: u16,
    known_hosts: PathBuf,
    client_key: PathBuf,
}

fn free_port() -> Result<u16, VmError> {
    let any = Path::new("127.0.0.1:0");
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(VmError::io(any))?;
    Ok(l.local_addr().map_err(VmError::io(any))?.port())
}

fn collect(mut out: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) {
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
    fn start(bed: &SshAbBed) -> Result<Guest, VmError> {
        crate::require_program(QEMU_ARM, super::QEMU_ARM_PACKAGE)?;
        let b = &bed.bed;
        let port = free_port()?;
        let known_hosts = b.dir.path().join("known_hosts");
        let line = format!("[127.0.0.1]:{port} {}\n", bed.keys.host_public);
        std::fs::write(&known_hosts, line).map_err(VmError::io(&known_hosts))?;
        let mut args = machine_args(&[&b.flash0, &b.flash1], 512);
        // Resets stay inside this process: U-Boot runs again and picks the slot.
        args.retain(|a| a != "-no-reboot");
        if let Some(i) = args.iter().position(|a| a == "-nic") {
            args.drain(i..i + 2);
        }
        args.push("-netdev".into());
        args.push(format!("user,id=n,hostfwd=tcp:127.0.0.1:{port}-:22"));
        args.extend(["-device".into(), "virtio-net-device,netdev=n".into()]);
        args.extend(["-device".into(), "virtio-rng-device".into()]);
        args.push("-drive".into());
        args.push(format!(
            "if=none,id=d0,format=raw,file={}",
            b.disk.display()
        ));
        args.extend(["-device".into(), "virtio-blk-device,drive=d0".into()]);
        let mut child = Command::new(QEMU_ARM)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| VmError::Command {
                command: QEMU_ARM.into(),
                detail: e.to_string(),
            })?;
        let serial = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().expect("piped stdout"), serial.clone());
        collect(child.stderr.take().expect("piped stderr"), serial.clone());
        Ok(Guest {
            child,
            serial,
            port,
            known_hosts,
            client_key: bed.keys.client_key.clone(),
        })
    }

    /// The loopback port forwarded to the guest's ssh.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The known_hosts file holding only the guest's host key.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// The serial console so far (every boot), CRs removed.
    pub fn serial(&self) -> String {
        let raw = self.serial.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&raw).replace('\r', "")
    }

    /// The ssh options that accept only the guest's host key (`-o`, value, ...).
    pub fn ssh_options(&self) -> Vec<String> {
        let known = format!("UserKnownHostsFile={}", self.known_hosts.display());
        [
            "StrictHostKeyChecking=yes",
            &known,
            "GlobalKnownHostsFile=/dev/null",
        ]
        .into_iter()
        .chain(["IdentitiesOnly=yes", "LogLevel=ERROR"])
        .flat_map(|o| ["-o".to_string(), o.to_string()])
        .collect()
    }

    /// Runs `command` as root over ssh (strict host key); exit code and stdout.
    pub fn ssh(&self, command: &str) -> Result<(Option<i32>, String), VmError> {
        let mut cmd = Command::new("ssh");
        cmd.arg("-i").arg(&self.client_key);
        cmd.args(["-p", &self.port.to_string(), "-o", "BatchMode=yes"]);
        cmd.args(["-o", "ConnectTimeout=10"]);
        cmd.args(self.ssh_options());
        let out = cmd
            .arg("root@127.0.0.1")
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| VmError::Command {
                command: format!("ssh {command}"),
                detail: e.to_string(),
            })?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    }

    /// Waits until the console (after byte `skip`) shows `text` and ssh answers.
    pub fn wait_ready(
        &mut self,
        text: &str,
        skip: usize,
        timeout: Duration,
    ) -> Result<(), VmError> {
        let start = Instant::now();
        loop {
            let shown = self.serial().get(skip..).is_some_and(|s| s.contains(text));
            if shown && self.ssh("true")?.0 == Some(0) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(VmError::Command {
                    command: "qemu-system-arm".into(),
                    detail: format!(
                        "exited with {status} waiting for {text:?}:\n{}",
                        self.serial()
                    ),
                });
            }
            if start.elapsed() > timeout {
                return Err(VmError::Timeout {
                    secs: timeout.as_secs(),
                    serial: self.serial(),
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `poweroff` in the guest (PID 1 syncs and unmounts the boot partition), then waits
    /// for QEMU to exit; returns the console.
    pub fn power_off(mut self, timeout: Duration) -> Result<String, VmError> {
        let _ = self.ssh("poweroff");
        let start = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) {
            if start.elapsed() > timeout {
                return Err(VmError::Timeout {
                    secs: timeout.as_secs(),
                    serial: self.serial(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(self.serial())
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
