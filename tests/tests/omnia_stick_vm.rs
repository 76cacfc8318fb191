//! The Turris Omnia's first install, on real parts: `qemu-system-arm -M virt` (TCG) runs
//! qemu_arm U-Boot 2023.01 built from Debian's source with btrfs support (as the Omnia's
//! U-Boot reads its eMMC btrfs), with its own default environment (taken from the binary)
//! plus a bootcmd that imports `boot_targets` from a FAT file; a USB stick (`usb-storage`)
//! written by `liminix-pack recovery --stick`; and an "eMMC" virtio disk whose partition 1
//! is a btrfs with a marker "TurrisOS" `@` (bootable: its own extlinux.conf, kernel and
//! initramfs under `@/boot`, `boot` → `@/boot` on the top level) and partition 2 a FAT
//! holding the U-Boot variables file (the stand-in for the Omnia's environment in NOR,
//! which Linux in this guest cannot reach).
//!
//! U-Boot's distro boot finds the stick's extlinux.conf on `usb0`, boots Debian's armmp
//! kernel with the maintenance root as initramfs; its DHCP client gets QEMU's lease, dropbear
//! answers the host's ssh (strict host key). Over that ssh the real client
//! (`liminix-update --install`) runs against the ARMv7 agent on the armmp kernel's btrfs,
//! first interrupted at several points inside one boot, then with the power cut (QEMU
//! killed) at several points, each followed by a power-on. U-Boot then boots the installed
//! generation from the eMMC btrfs; after `restore-snapshot` it boots the marker system
//! again. Both systems' initramfs prints which `@` it runs on (`probe NAME: …`).

mod omnia_stick;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use liminix_tests::device::pack_binary;
use liminix_vm::debian::{self, Arch};
use liminix_vm::require_program;
use omnia_stick::disks::{self, GENERATION_MARKER, VENDOR_MARKER};
use omnia_stick::{run, text, Machine, PowerOn};

struct Bed {
    m: Machine,
    id: std::path::PathBuf,
    known: std::path::PathBuf,
    bundle: std::path::PathBuf,
}

fn keys(dir: &Path, port: u16) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
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
        .unwrap()
        .to_string();
    let mut w = line.split_whitespace();
    let known = dir.join("known_hosts");
    let (kind, key) = (w.next().unwrap(), w.next().unwrap());
    std::fs::write(&known, format!("[127.0.0.1]:{port} {kind} {key}\n")).unwrap();
    (id, host_key, known)
}

impl Bed {
    fn ssh(&self, command: &str) -> Output {
        Command::new("ssh")
            .args(self.ssh_options())
            .args(["root@127.0.0.1", command])
            .output()
            .expect("ssh (openssh-client)")
    }

    fn ssh_options(&self) -> Vec<String> {
        [
            "-i".to_string(),
            self.id.display().to_string(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "ConnectTimeout=10".into(),
            "-p".into(),
            self.m.port.to_string(),
        ]
        .to_vec()
    }

    fn ok(&self, command: &str) -> String {
        let o = self.ssh(command);
        assert!(o.status.success(), "{command}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `liminix-update --install` from the host, through `ssh` (the program, or a wrapper).
    fn install(&self, ssh: &str) -> Output {
        self.install_command(ssh).output().unwrap()
    }

    fn install_command(&self, ssh: &str) -> Command {
        let client = pack_binary().with_file_name("liminix-update");
        let mut cmd = Command::new(client);
        cmd.args(["--install", "--agent", "/bin/liminix-agent", "--json"])
            .args(["--boot-targets", "virtio0 usb0"])
            .arg("--bundle")
            .arg(&self.bundle)
            .arg("root@127.0.0.1")
            .env(
                "SSH_COMMAND",
                format!("{ssh} {}", self.ssh_options().join(" ")),
            );
        cmd
    }

    /// `@` is the marker system and U-Boot still boots the stick first: the state a cut
    /// install must leave.
    fn vendor_intact(&self, what: &str) {
        self.mount_top();
        let out = self.ok("cat /dest/@/marker; fw_printenv boot_targets");
        assert!(out.contains(VENDOR_MARKER), "{what}: {out}");
        assert!(out.contains("boot_targets=usb0 virtio0"), "{what}: {out}");
    }

    /// The btrfs top level on /dest, as `prepare` mounts it, for looking after a power-on.
    fn mount_top(&self) {
        self.ok("grep -q ' /dest ' /proc/mounts || \
                 { mkdir -p /dest && mount -t btrfs -o subvolid=5 /dev/vda1 /dest; }");
    }

    /// Waits for the stick's ssh after power-on; then mounts the variables file's FAT
    /// where the stick's fw_env.config expects it.
    fn login(&self, on: &PowerOn, what: &str) {
        let login = loop {
            let o = self.ssh("cat /etc/banner; ip -o addr show dev eth0; cat /proc/cmdline");
            if o.status.success() || on.start.elapsed() > Duration::from_secs(900) || on.is_off() {
                break o;
            }
            std::thread::sleep(Duration::from_secs(2));
        };
        assert!(
            login.status.success(),
            "{what}: no ssh login: {}",
            text(&login)
        );
        eprintln!(
            "{what}: ssh answered {:?} after power-on",
            on.start.elapsed()
        );
        let out = String::from_utf8_lossy(&login.stdout).into_owned();
        assert!(out.contains("inet 10.0.2.15/24"), "DHCP lease: {out}");
        // The variables file stands in for the Omnia's NOR environment: reached as a file.
        self.ok("mkdir -p /env && mount -t vfat /dev/vda2 /env");
    }

    /// Powers on and waits until the system U-Boot boots from the eMMC prints its probe
    /// line and powers off; the console.
    fn probe_boot(&self, with_stick: bool, what: &str) -> String {
        let on = self.m.power_on(with_stick);
        let r = on.wait_off();
        eprintln!("{what}: powered itself off after {:?}", r.elapsed);
        assert!(!r.timed_out, "{what}: {}", r.serial);
        r.serial
    }
}

#[test]
fn the_stick_boots_in_u_boot_installs_into_a_btrfs_snapshot_and_restores_it() {
    for (tool, package) in [
        ("ssh", "openssh-client"),
        ("dropbearkey", "dropbear-bin"),
        ("mkfs.btrfs", "btrfs-progs"),
        ("sfdisk", "fdisk"),
        ("fw_printenv", "libubootenv-tool"),
        ("mcopy", "mtools"),
        ("qemu-system-arm", "qemu-system-arm"),
    ] {
        require_program(tool, package).unwrap();
    }
    let began = Instant::now();
    let uboot = omnia_stick::btrfs_uboot();
    let a = debian::assets(Arch::Armhf).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = omnia_stick::free_port();
    let (id, host_key, known) = keys(d, port);
    let (bundle, trusted) = disks::closure_bundle(d, &a);
    let stick = disks::stick(d, &a, &host_key, &d.join("id.pub"), &trusted);
    let emmc = disks::emmc(d, &a);
    let m = Machine::new(d, &uboot, emmc, stick, port);
    let bed = Bed {
        m,
        id,
        known,
        bundle,
    };
    eprintln!("bed ready after {:?}", began.elapsed());

    // Boot 1: the stick; cuts inside the running system, then the power cut mid-transfer.
    let (mut client, s) = with_stick(&bed, "boot 1 (stick)", |bed| {
        scenario(bed);
        stall_transfer(bed)
    });
    let _ = client.kill();
    let _ = client.wait();
    assert!(s.contains("boot_targets=usb0 virtio0"), "{s}");
    assert!(s.contains("Scanning usb 0:1..."), "{s}");
    assert!(s.contains("Retrieving file: /boot/initramfs"), "{s}");
    assert!(s.contains("maintenance: ready"), "{s}");

    power_cuts(&bed);
    eprintln!("whole test: {:?}", began.elapsed());
}

/// Powers on with the stick, logs in, runs `f`, then cuts the power the moment `f` returns
/// (no sync, no reboot): the power cut at the event `f` waited for. `f`'s value and the
/// console.
fn with_stick<T>(bed: &Bed, what: &str, f: impl FnOnce(&Bed) -> T) -> (T, String) {
    let on = bed.m.power_on(true);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bed.login(&on, what);
        f(bed)
    }));
    let console = on.cut();
    match r {
        Ok(v) => (v, console.serial),
        Err(e) => {
            eprintln!("{what}: serial:\n{}", console.serial);
            std::panic::resume_unwind(e)
        }
    }
}

/// U-Boot booted `name`'s system from the eMMC btrfs (through `boot` → `@/boot`), and that
/// system's initramfs saw `marker` and `generation` in `@`.
fn assert_probe(s: &str, name: &str, marker: &str, generation: &str) {
    assert!(s.contains("Scanning virtio 0:1..."), "{s}");
    assert!(s.contains("Found /boot/extlinux/extlinux.conf"), "{s}");
    assert!(
        !s.contains("Scanning usb 0:1..."),
        "the stick was not booted: {s}"
    );
    let line = s
        .lines()
        .find(|l| l.starts_with("probe "))
        .unwrap_or_else(|| panic!("no probe line: {s}"));
    let want = format!("probe {name}: marker={marker} generation={generation} init=");
    assert!(line.starts_with(&want), "{line}\n{s}");
    eprintln!("{line}");
}

/// Power cut 1, in the middle of the transfer: the bundle is in the guest's RAM, `prepare`
/// has run, and `receive` runs in the background while a loop in the guest watches the new
/// root; the power goes the moment it reports the first file restored there (an ssh event),
/// before the generation is written. Returns the ssh session, to be reaped after the cut.
fn stall_transfer(bed: &Bed) -> std::process::Child {
    let o = Command::new("ssh")
        .args(bed.ssh_options())
        .args(["root@127.0.0.1", "cat > /tmp/b"])
        .stdin(std::fs::File::open(&bed.bundle).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let cmd = "liminix-agent btrfs-install prepare --json >/dev/null || exit 1; \
               liminix-agent --root /dest/@.liminix-new receive --no-reboot < /tmp/b >/dev/null 2>&1 & p=$!; \
               until find /dest/@.liminix-new -type f | grep -q . || ! kill -0 $p; do :; done; \
               echo STAGED $(find /dest/@.liminix-new -type f); sleep 600";
    let mut session = Command::new("ssh")
        .args(bed.ssh_options())
        .args(["root@127.0.0.1", cmd])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = session.stdout.take().unwrap();
    let line = std::io::BufRead::lines(std::io::BufReader::new(out))
        .map_while(|l| l.ok())
        .find(|l| l.starts_with("STAGED"));
    assert!(line.is_some(), "the watcher never saw a restored file");
    eprintln!("power cut mid-transfer: {line:?}");
    session
}

/// The boots after the first: each power cut is followed by a power-on that shows the
/// router bootable, then the install and the way back on U-Boot with btrfs.
fn power_cuts(bed: &Bed) {
    let s = bed.probe_boot(false, "boot 2 (no stick, after the cut mid-transfer)");
    assert_probe(&s, "turris", VENDOR_MARKER, "");

    // Power cut 2: the new root complete, `finish` not started.
    with_stick(bed, "boot 3 (stick)", |bed| {
        bed.vendor_intact("after the power cut mid-transfer");
        let j = bed.ok("cat /dest/.liminix-install.json");
        assert!(j.contains("\"filling\""), "{j}");
        let cmd = "cat > /tmp/b; liminix-agent btrfs-install prepare --json && \
                   liminix-agent --root /dest/@.liminix-new receive --no-reboot < /tmp/b >/dev/null && echo RECEIVED";
        let o = Command::new("ssh")
            .args(bed.ssh_options())
            .args(["root@127.0.0.1", cmd])
            .stdin(std::fs::File::open(&bed.bundle).unwrap())
            .output()
            .unwrap();
        assert!(text(&o).contains("RECEIVED"), "{}", text(&o));
        assert!(
            text(&o).contains("\"snapshot_taken\":false"),
            "{}",
            text(&o)
        );
    });

    // Power cut 3: right after the install reported success (environment written).
    let (snap, _) = with_stick(bed, "boot 4 (stick)", |bed| {
        bed.vendor_intact("after the power cut before finish");
        let o = bed.install("ssh");
        assert!(o.status.success(), "{}", text(&o));
        snapshot_of(&o)
    });

    // The stick stays plugged in: `boot_targets` now names the eMMC first.
    let s = bed.probe_boot(true, "boot 5 (installed generation)");
    assert_probe(&s, "liminix", "", GENERATION_MARKER);
    // `@/init` leads through the generation record, which the agent wrote into `@`.
    assert!(s.contains("init=generations/current/init"), "{s}");

    // The user makes U-Boot try the stick first again (at its console, or fw_setenv).
    bed.m.host_boot_targets(Some("usb0 virtio0"));
    // Power cut 4: right after the restore and the user's fw_setenv back to the eMMC.
    with_stick(bed, "boot 6 (stick)", |bed| {
        bed.mount_top();
        let out = bed.ok("cat /dest/@/marker 2>/dev/null; readlink /dest/boot; true");
        assert!(!out.contains(VENDOR_MARKER), "{out}");
        bed.ok(&format!("liminix-agent restore-snapshot {snap}"));
        bed.ok("fw_setenv boot_targets 'virtio0 usb0'");
    });
    let s = bed.probe_boot(true, "boot 7 (restored)");
    assert_probe(&s, "turris", VENDOR_MARKER, "");
    assert_eq!(bed.m.host_boot_targets(None), "virtio0 usb0");
}

/// Everything done over ssh while the stick runs.
fn scenario(bed: &Bed) {
    let env = bed.ok("fw_printenv boot_targets");
    assert!(env.contains("boot_targets=usb0 virtio0"), "{env}");

    // Cut 1: only `prepare` ran (snapshot taken, new root empty).
    let p = bed.ok("liminix-agent btrfs-install prepare --json");
    assert!(p.contains("\"snapshot_taken\":true"), "{p}");
    bed.vendor_intact("after prepare");
    let flags = bed.ok("cat /proc/mounts; ls -a /dest");
    assert!(flags.contains("@.liminix-new"), "{flags}");

    // Cut 2: the transfer's connection ends after 64 KiB of the bundle.
    let cut = bed.m.dir.join("cut-ssh");
    // The shell must not keep the client's pipe open itself, or the client's writes would
    // block once head has stopped reading instead of failing; and head must pass on what it
    // reads at once (its stdout is a pipe, which stdio buffers), or the agent never sees the
    // header and the conversation stalls.
    let script = "#!/bin/sh\nexec 3<&0 </dev/null\nstdbuf -o0 head -c 65536 <&3 3<&- | ssh \"$@\" 3<&- &\nexec 3<&-\nwait\n";
    std::fs::write(&cut, script).unwrap();
    run(Command::new("chmod").arg("755").arg(&cut));
    let o = bed.install(&cut.display().to_string());
    assert!(
        !o.status.success(),
        "a cut transfer must fail: {}",
        text(&o)
    );
    bed.vendor_intact("after a cut transfer");

    // Cut 3: the agent killed (SIGKILL) while `finish` runs, at three moments; after each,
    // the next step finds a state it can finish.
    for delay in ["0.05", "0.3", "1"] {
        let o = bed.install("ssh");
        // The full run above completed: undo it so that the next cut has work to cut.
        assert!(o.status.success(), "{}", text(&o));
        let snap = snapshot_of(&o);
        bed.ok(&format!("liminix-agent restore-snapshot {snap}"));
        bed.ok("fw_setenv boot_targets 'usb0 virtio0'");
        bed.ok("liminix-agent btrfs-install prepare");
        let cmd = format!(
            "cat > /tmp/b; liminix-agent --root /dest/@.liminix-new receive --no-reboot < /tmp/b >/dev/null; \
             liminix-agent btrfs-install finish & p=$!; sleep {delay}; kill -9 $p; wait; ls /dest; cat /dest/.liminix-install.json 2>/dev/null; true"
        );
        let o = Command::new("ssh")
            .args(bed.ssh_options())
            .args(["root@127.0.0.1", &cmd])
            .stdin(std::fs::File::open(&bed.bundle).unwrap())
            .output()
            .unwrap();
        eprintln!("finish killed after {delay} s: {}", text(&o));
        let o = bed.install("ssh");
        assert!(
            o.status.success(),
            "after the kill at {delay} s: {}",
            text(&o)
        );
        assert_installed(bed);
    }

    // The way back.
    let snaps = bed.ok("liminix-agent restore-snapshot");
    let first = snaps
        .lines()
        .find(|l| l.ends_with("-pre-liminix"))
        .unwrap()
        .to_owned();
    bed.ok(&format!("liminix-agent restore-snapshot {first}"));
    let out = bed.ok("cat /dest/@/marker; fw_printenv boot_targets");
    assert!(out.contains(VENDOR_MARKER), "{out}");
    // restore-snapshot leaves the environment to the user: it still says what the last
    // install set.
    assert!(out.contains("boot_targets=virtio0 usb0"), "{out}");
    bed.ok("fw_setenv boot_targets 'usb0 virtio0'; sync");
}

fn snapshot_of(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.contains("\"install_finished\""))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["snapshot"].as_str().unwrap().to_owned()
}

/// What U-Boot with btrfs would read: `/boot` → `@/boot`, the extlinux.conf, the kernel.
fn assert_installed(bed: &Bed) {
    let out = bed.ok(
        "readlink /dest/boot; cat /dest/boot/extlinux/extlinux.conf; ls -l /dest/boot/kernel; \
         test -e /dest/@/marker && echo MARKER; fw_printenv boot_targets; ls /dest",
    );
    assert!(out.starts_with("@/boot\n"), "{out}");
    assert!(out.contains("kernel /boot/kernel"), "{out}");
    assert!(!out.contains("MARKER"), "{out}");
    assert!(out.contains("boot_targets=virtio0 usb0"), "{out}");
    assert!(
        !out.contains("@.liminix-new") && !out.contains("@.liminix-old"),
        "{out}"
    );
}
