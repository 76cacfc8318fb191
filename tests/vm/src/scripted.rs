//! Scripted guests: QEMU boots a kernel with an initramfs built here (busybox, the
//! requested kernel modules and their dependencies, chosen host tools with their shared
//! libraries, test files) whose /init runs a shell script and reports the script's exit
//! status after a per-run marker on the serial console.
//!
//! Two machines: x86_64 (the host's Debian kernel) and MIPS little-endian (`-M malta`,
//! Debian's 4kc-malta kernel and mipsel busybox). On both, raw disk images become virtio
//! disks, so block2mtd gives guests flash that outlives them. `kill_on` cuts the power (SIGKILL to
//! QEMU) when a line appears, for interrupted-update tests; `cut_after_command` cuts it right
//! after a command returned, with nothing synced after it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::debian::{self, Arch};
use super::initramfs::Initramfs;
use super::kernel::{find_kernel, Kernel};
use super::qemu::{Launch, Stop};
use super::VmError;

/// Which QEMU machine boots the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `qemu-system-x86_64` with the host's kernel and busybox.
    X86_64,
    /// `qemu-system-mipsel -M malta` with Debian's mipsel kernel and busybox.
    MipselMalta,
    /// `qemu-system-arm -M virt` with Debian's armmp kernel (a zImage) and armhf busybox,
    /// booted directly (QEMU makes the device tree), no U-Boot.
    ArmVirt,
}

impl Machine {
    /// The kernel and the busybox executable of this machine's guests.
    fn system(self) -> Result<(Kernel, PathBuf), VmError> {
        match self {
            Machine::X86_64 => {
                crate::require("/bin/busybox", "busybox-static")?;
                Ok((find_kernel()?, PathBuf::from("/bin/busybox")))
            }
            Machine::MipselMalta => {
                let a = debian::assets(Arch::Mipsel)?;
                Ok((a.kernel, a.busybox))
            }
            Machine::ArmVirt => {
                let a = debian::assets(Arch::Armhf)?;
                Ok((a.kernel, a.busybox))
            }
        }
    }

    /// The serial console's device name in the guest.
    fn console(self) -> &'static str {
        match self {
            Machine::ArmVirt => "ttyAMA0",
            Machine::X86_64 | Machine::MipselMalta => "ttyS0",
        }
    }

    fn qemu(self) -> (&'static str, &'static str, &'static [&'static str]) {
        match self {
            Machine::X86_64 => ("qemu-system-x86_64", "qemu-system-x86", &[]),
            Machine::MipselMalta => ("qemu-system-mipsel", "qemu-system-mips", &["-M", "malta"]),
            Machine::ArmVirt => (
                "qemu-system-arm",
                "qemu-system-arm",
                &["-M", "virt", "-cpu", "cortex-a15"],
            ),
        }
    }
}

/// What a guest run produced.
#[derive(Debug, Clone)]
pub struct VmOutput {
    /// Everything printed on the serial console (kernel and script), CRs removed.
    pub serial: String,
    /// The test script's exit status; None if the guest never reported one
    /// (killed, crashed or timed out).
    pub status: Option<i32>,
    /// QEMU was killed because the `kill_on` line appeared.
    pub killed_at_marker: bool,
    /// QEMU was killed at the timeout.
    pub timed_out: bool,
    /// Wall time from QEMU start to its exit.
    pub elapsed: Duration,
    pub qemu_stderr: String,
}

/// Shell functions every guest script can use; their output lines are read back by
/// [`VmOutput::field`] and [`VmOutput::json`].
const SCRIPT_HELPERS: &str = r#"# same LEN A B TAG: "TAG equal=1|0", whether the first LEN bytes of A and B are equal
same() { if head -c "$1" "$2" | cmp -s - "$3"; then echo "$4 equal=1"; else echo "$4 equal=0"; fi; }
# json TAG CMD...: one line "TAG rc=N {json}"
json() { tag=$1; shift; rc=0; out=$("$@") || rc=$?; echo "$tag rc=$rc $(echo "$out" | tr -d '\n')"; }
# cut_after TAG CMD...: the kernel stops writing dirty pages back on its own, CMD runs,
# "TAG rc=N" and the power-cut marker are printed and the guest waits for the cut
# (VmBuilder::cut_after_command): only what CMD itself synced reaches the disks.
cut_after() {
  echo 0 > /proc/sys/vm/dirty_writeback_centisecs
  echo 360000 > /proc/sys/vm/dirty_expire_centisecs
  tag=$1; shift; rc=0; "$@" || rc=$?
  echo "$tag rc=$rc"; echo LIMINIX-VM-CUT-NOW; sleep 3600
}
"#;

impl VmOutput {
    /// Serial lines starting with `prefix`.
    pub fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.serial
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// The value of `key=` in the first serial line starting with `prefix`.
    pub fn field(&self, prefix: &str, key: &str) -> Option<&str> {
        let line = self.lines_starting(prefix).into_iter().next()?;
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }

    /// [`field`](Self::field), or a panic that shows the whole console.
    pub fn require_field(&self, prefix: &str, key: &str) -> &str {
        self.field(prefix, key)
            .unwrap_or_else(|| panic!("no `{prefix}` line with {key}=; serial:\n{}", self.serial))
    }

    /// The exit status and JSON document of the line `json TAG CMD...` printed
    /// ("TAG rc=N {…}"); panics with the whole console if there is none.
    pub fn json_rc(&self, tag: &str) -> (i32, serde_json::Value) {
        let prefix = format!("{tag} rc=");
        let line = self
            .lines_starting(&prefix)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no {tag} line; serial:\n{}", self.serial));
        let (rc, doc) = line[prefix.len()..].split_once(' ').unwrap_or((line, ""));
        let rc = rc
            .parse()
            .unwrap_or_else(|_| panic!("{line}\n{}", self.serial));
        let v = serde_json::from_str(doc)
            .unwrap_or_else(|e| panic!("{tag}: {e}: {doc}\n{}", self.serial));
        (rc, v)
    }

    /// [`json_rc`](Self::json_rc) of a command that must have exited 0.
    pub fn json(&self, tag: &str) -> serde_json::Value {
        let (rc, v) = self.json_rc(tag);
        assert_eq!(rc, 0, "{tag} exited {rc}: {v}\n{}", self.serial);
        v
    }

    /// Panics with the whole console unless the script exited 0.
    pub fn assert_success(&self) {
        assert_eq!(
            self.status,
            Some(0),
            "guest script failed; serial console:\n{}",
            self.serial
        );
    }
}

/// Configures one guest boot.
#[derive(Debug, Clone)]
pub struct VmBuilder {
    modules: Vec<String>,
    /// `modprobe` lines run before the script.
    loads: Vec<String>,
    files: Vec<(PathBuf, String)>,
    host_tools: Vec<String>,
    disks: Vec<PathBuf>,
    script: String,
    timeout: Duration,
    memory_mb: u32,
    append: String,
    kill_on: Option<String>,
    reboot: bool,
    machine: Machine,
    /// Host executables shipped with their shared libraries: (host path, guest path).
    executables: Vec<(PathBuf, String)>,
    /// Boots this kernel instead of the machine's usual one.
    kernel: Option<Kernel>,
}

impl Default for VmBuilder {
    fn default() -> Self {
        Self::new()
    }
}

static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

impl VmBuilder {
    /// An x86_64 guest on the host's kernel (512 MiB, 120 s).
    pub fn new() -> Self {
        Self {
            modules: Vec::new(),
            loads: Vec::new(),
            files: Vec::new(),
            host_tools: Vec::new(),
            disks: Vec::new(),
            script: String::new(),
            timeout: Duration::from_secs(120),
            memory_mb: 512,
            append: String::new(),
            kill_on: None,
            reboot: false,
            machine: Machine::X86_64,
            executables: Vec::new(),
            kernel: None,
        }
    }

    /// A guest on the MIPS little-endian Malta board instead of x86_64. It runs mipsel
    /// programs only: host tools are x86_64-only. Disks are virtio-blk on Malta's PCI bus,
    /// as on x86_64 (the kernel's virtio_pci and virtio_blk modules).
    pub fn mipsel() -> Self {
        Self {
            machine: Machine::MipselMalta,
            memory_mb: 256,
            ..Self::new()
        }
    }

    /// A guest on ARM `virt` (Debian's armmp kernel, 512 MiB): ARMv7 programs only, no host
    /// tools and no disks.
    pub fn armv7() -> Self {
        Self {
            machine: Machine::ArmVirt,
            ..Self::new()
        }
    }

    /// Boots `kernel` (e.g. [`crate::malta::uniprocessor_kernel`]) instead of the machine's
    /// usual one; modules come from its module tree, so a kernel without one takes none.
    pub fn kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = Some(kernel);
        self
    }

    /// The machine this guest boots on.
    pub fn machine(&self) -> Machine {
        self.machine
    }

    /// Ships a kernel module and its dependencies; the script loads it with
    /// `modprobe NAME params…` (busybox modprobe reads the shipped modules.dep).
    pub fn module(mut self, name: &str) -> Self {
        self.modules.push(name.to_string());
        self
    }

    /// Ships a module like [`module`](Self::module) and loads it with `params`
    /// before the script starts (in call order).
    pub fn modprobe(mut self, name: &str, params: &str) -> Self {
        self.loads.push(format!("modprobe {name} {params}"));
        self.module(name)
    }

    /// Copies a host file into the guest at `guest` (absolute path).
    pub fn file(mut self, host: impl AsRef<Path>, guest: &str) -> Self {
        self.files
            .push((host.as_ref().to_path_buf(), guest.to_string()));
        self
    }

    /// Copies a dynamically linked host executable into the guest at `guest`, with the
    /// shared libraries `ldd` lists for it.
    pub fn executable(mut self, host: impl AsRef<Path>, guest: &str) -> Self {
        self.executables
            .push((host.as_ref().to_path_buf(), guest.to_string()));
        self
    }

    /// Ships a host executable (e.g. mtd-utils' `ubinfo`) as /usr/sbin/NAME,
    /// with the shared libraries `ldd` lists for it.
    pub fn host_tool(mut self, name: &str) -> Self {
        self.host_tools.push(name.to_string());
        self
    }

    /// Attaches a raw image as the next virtio disk (/dev/vda, /dev/vdb, …).
    pub fn disk(mut self, raw_image: impl AsRef<Path>) -> Self {
        self.disks.push(raw_image.as_ref().to_path_buf());
        self
    }

    /// The test script, run by busybox `sh -e` in /tmp with output on the console.
    pub fn script(mut self, sh: &str) -> Self {
        self.script = sh.to_string();
        self
    }

    /// Hard limit for the whole boot, in seconds.
    pub fn timeout(mut self, secs: u64) -> Self {
        self.timeout = Duration::from_secs(secs);
        self
    }

    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// Extra kernel command-line arguments.
    pub fn append(mut self, args: &str) -> Self {
        self.append = args.to_string();
        self
    }

    /// Kills QEMU (SIGKILL, no guest shutdown) as soon as a console line contains `line`.
    pub fn kill_on(mut self, line: &str) -> Self {
        self.kill_on = Some(line.to_string());
        self
    }

    /// Cuts the power as soon as the script's `cut_after TAG CMD…` has run CMD: QEMU is
    /// killed with the guest's page cache unwritten, like a power cut right after a
    /// command returned. The next boot on the same disks sees what CMD made durable.
    pub fn cut_after_command(self) -> Self {
        self.kill_on("LIMINIX-VM-CUT-NOW")
    }

    /// Lets a guest reset (a panic after 1 s, or `reboot -f`) restart the guest in the
    /// same QEMU process instead of ending the run: RAM is kept (so ramoops records
    /// survive), the same kernel and initramfs boot again and /init runs the script once
    /// more, which must tell the boots apart by state that survived.
    pub fn allow_reboot(mut self) -> Self {
        self.reboot = true;
        self
    }

    /// Like `kill_on(marker).run()`.
    pub fn run_until(self, marker: &str) -> Result<VmOutput, VmError> {
        self.kill_on(marker).run()
    }

    /// Builds the initramfs, boots, and waits for the guest to finish.
    pub fn run(self) -> Result<VmOutput, VmError> {
        self.check_machine()?;
        let (usual, busybox) = self.machine.system()?;
        let kernel = self.kernel.clone().unwrap_or(usual);
        let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id());
        let end_marker = format!("LIMINIX-VM-END-{tag}");
        let initrd = std::env::temp_dir().join(format!("liminix-vm-{tag}.cpio"));
        self.initramfs(&kernel, &busybox, &end_marker)?
            .write(&initrd)?;
        let (program, package, _) = self.machine.qemu();
        let launch = Launch {
            program,
            package,
            args: self.qemu_args(&kernel, &initrd),
            stop: self.kill_on.as_deref().map(Stop::at_line),
            timeout: self.timeout,
        };
        let result = launch.run();
        let _ = std::fs::remove_file(&initrd);
        let run = result?;
        let status = parse_status(&run.serial, &end_marker);
        let out = VmOutput {
            status,
            killed_at_marker: run.stopped,
            timed_out: run.timed_out,
            elapsed: run.elapsed,
            qemu_stderr: run.stderr,
            serial: run.serial,
        };
        if !run.stopped && !run.timed_out && !run.exit.success() && status.is_none() {
            return Err(VmError::Qemu(Box::new(out)));
        }
        Ok(out)
    }

    fn check_machine(&self) -> Result<(), VmError> {
        if self.machine != Machine::X86_64 && !self.host_tools.is_empty() {
            return Err(VmError::Unsupported(format!(
                "{:?} guests cannot take host tools",
                self.machine
            )));
        }
        if self.machine == Machine::ArmVirt && !self.disks.is_empty() {
            return Err(VmError::Unsupported(
                "ArmVirt guests take no disks (use arm::ArmBed)".into(),
            ));
        }
        let moduleless = self
            .kernel
            .as_ref()
            .is_some_and(|k| k.modules_dir.as_os_str().is_empty());
        if moduleless && !(self.modules.is_empty() && self.disks.is_empty()) {
            return Err(VmError::Unsupported(
                "a kernel without modules takes no modules and no disks (virtio is a module)"
                    .into(),
            ));
        }
        Ok(())
    }

    fn initramfs(
        &self,
        kernel: &Kernel,
        busybox: &Path,
        end_marker: &str,
    ) -> Result<Initramfs, VmError> {
        let mut fs = Initramfs::new();
        fs.copy(busybox, "/bin/busybox")?;
        fs.symlink("/bin/sh", "busybox");
        let with_disks = !self.disks.is_empty();
        fs.bytes(
            "/init",
            init_script(with_disks, end_marker).as_bytes(),
            0o755,
        );
        // pipefail: `probe | sed …` must not hide a failing probe from `sh -e`.
        let script = format!(
            "set -o pipefail\n{SCRIPT_HELPERS}{}\n{}",
            self.loads.join("\n"),
            self.script
        );
        fs.bytes("/test.sh", script.as_bytes(), 0o755);
        let mut modules = self.modules.clone();
        if with_disks {
            modules.extend(["virtio_pci", "virtio_blk"].map(String::from));
        }
        fs.modules(kernel, &modules)?;
        for name in &self.host_tools {
            fs.host_tool(name)?;
        }
        for (host, guest) in &self.executables {
            fs.executable(host, guest)?;
        }
        for (host, guest) in &self.files {
            fs.copy(host, guest)?;
        }
        Ok(fs)
    }

    fn qemu_args(&self, kernel: &Kernel, initrd: &Path) -> Vec<String> {
        let (_, _, machine) = self.machine.qemu();
        let mut args: Vec<String> = machine.iter().map(|a| a.to_string()).collect();
        args.extend(["-accel", "tcg", "-nographic", "-nic", "none"].map(String::from));
        if !self.reboot {
            args.push("-no-reboot".into());
        }
        args.extend(["-m".into(), self.memory_mb.to_string()]);
        args.extend([
            "-kernel".into(),
            kernel.image.to_string_lossy().into_owned(),
        ]);
        args.extend(["-initrd".into(), initrd.to_string_lossy().into_owned()]);
        // Without reboots a panic resets at once, which -no-reboot turns into QEMU's exit.
        let panic = if self.reboot { "panic=1" } else { "panic=-1" };
        let console = self.machine.console();
        let cmdline = format!("console={console} quiet {panic} {}", self.append);
        args.extend(["-append".into(), cmdline.trim().to_string()]);
        // A power cut here is QEMU being killed. QEMU buffers no guest write (raw images),
        // so what the guest handed to a virtual disk is in the host file in every cache
        // mode; a cut loses what the guest still held in its own RAM, which is where
        // block2mtd keeps writes (the page cache of /dev/vdX) until its sync writes them
        // out. That sync (sync_blockdev) sends no FLUSH command, so it makes data durable
        // only on a disk without a volatile write cache: `writethrough` is such a disk (no
        // write cache announced, each write complete once on the host's medium, O_DSYNC).
        // `unsafe` would announce a write cache and drop the guest's flushes, and
        // `writeback` or `none` announce a cache that block2mtd never flushes.
        for d in &self.disks {
            args.push("-drive".into());
            args.push(format!(
                "file={},format=raw,if=virtio,cache=writethrough",
                d.display()
            ));
        }
        args
    }
}

/// Status printed after the end marker, if the marker appeared.
fn parse_status(serial: &str, marker: &str) -> Option<i32> {
    let rest = &serial[serial.rfind(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn init_script(with_disks: bool, end_marker: &str) -> String {
    let disks = if with_disks {
        "modprobe virtio_pci; modprobe virtio_blk\nfor i in $(seq 50); do [ -e /dev/vda ] && break; sleep 0.1; done\n"
    } else {
        ""
    };
    format!(
        "#!/bin/busybox sh\n\
         /bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin\n\
         /bin/busybox --install -s\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         mount -t tmpfs tmpfs /tmp\n\
         export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
         {disks}\
         echo; echo LIMINIX-VM-START\n\
         cd /tmp\n\
         sh -e /test.sh </dev/null 2>&1\n\
         rc=$?\n\
         sync\n\
         echo \"{end_marker} $rc\"\n\
         poweroff -f\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_parsed_from_result_lines() {
        let out = VmOutput {
            serial: "noise\ninfo kind=Nand size=268435456\n".into(),
            status: Some(0),
            killed_at_marker: false,
            timed_out: false,
            elapsed: Duration::ZERO,
            qemu_stderr: String::new(),
        };
        assert_eq!(out.field("info ", "size"), Some("268435456"));
        assert_eq!(out.field("info ", "missing"), None);
    }

    #[test]
    fn status_follows_the_last_marker() {
        let s = "x\nEND-1 3\nEND-1 0\n";
        assert_eq!(parse_status(s, "END-1"), Some(0));
        assert_eq!(parse_status("nothing", "END-1"), None);
    }

    #[test]
    fn reboots_are_opt_in() {
        let k = Kernel {
            image: PathBuf::from("/boot/vmlinuz"),
            version: "v".into(),
            modules_dir: PathBuf::new(),
        };
        let args = |b: VmBuilder| b.qemu_args(&k, Path::new("/i")).join(" ");
        let once = args(VmBuilder::new());
        assert!(
            once.contains("-no-reboot") && once.contains("panic=-1"),
            "{once}"
        );
        let again = args(VmBuilder::new().allow_reboot());
        assert!(
            !again.contains("-no-reboot") && again.contains("quiet panic=1"),
            "{again}"
        );
    }
}
