//! The Turris Omnia's first install, on real parts: `qemu-system-arm -M virt` (TCG) runs
//! Debian's qemu_arm U-Boot with its own default environment (taken from the binary) plus a
//! bootcmd that imports `boot_targets` from a FAT file, a USB stick (`usb-storage`) written
//! by `liminix-pack recovery --stick`, and an "eMMC" virtio disk whose partition 1 is a btrfs
//! with a marker "TurrisOS" `@` and partition 2 a FAT holding the U-Boot variables file (the
//! stand-in for the Omnia's environment in NOR, which Linux in this guest cannot reach).
//!
//! U-Boot's distro boot finds the stick's extlinux.conf on `usb0`, boots Debian's armmp
//! kernel with the maintenance root as initramfs; its DHCP client gets QEMU's lease, dropbear
//! answers the host's ssh (strict host key). Over that ssh the real client
//! (`liminix-update --install`) runs against the ARMv7 agent on the armmp kernel's btrfs,
//! first interrupted at several points, then to the end; then `restore-snapshot`.
//!
//! Not possible here: booting the installed generation *from the btrfs* with this U-Boot,
//! which Debian builds without btrfs support (CONFIG_FS_BTRFS off: no btrfs in its `fstype`
//! list). The test checks instead what that boot would read: `/boot` on the top level
//! leading to `@/boot/extlinux/extlinux.conf` and the kernel it names, and `boot_targets`
//! as the host's libubootenv reads it from the variables file.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use liminix_tests::device::pack_binary;
use liminix_vm::arm::assets;
use liminix_vm::debian::{self, Arch};
use liminix_vm::initramfs::Initramfs;
use liminix_vm::qemu::Launch;
use liminix_vm::require_program;

const EXTLINUX: &str = "/nix/store/0k1s7lnw2dy5ah8ylvm6x4a9dhmhnxcz-extlinux";
const TOPLEVEL: &str = "/nix/store/1b8fq3xkcmnqjhhm9ksm1s4d7lg2vdzr-system-configuration";
/// eMMC partitions (start, sectors): btrfs, then the FAT with the U-Boot variables.
const EMMC: [(u64, u64); 2] = [(2048, 524288), (526336, 16384)];
const ENV_SIZE: usize = 0x4000;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// U-Boot's own default environment, read from the binary (NUL-separated `name=value`
/// strings starting at its `bootcmd`), with `bootcmd` importing `boot_targets` first.
fn uboot_env() -> String {
    let bin = std::fs::read(assets::UBOOT_QEMU_ARM).unwrap();
    let needle = b"bootcmd=run distro_bootcmd\0";
    let start = bin
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the default environment in u-boot.bin");
    let end = start + bin[start..].windows(2).position(|w| w == b"\0\0").unwrap();
    let mut lines: Vec<String> = bin[start..end]
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .filter(|l| !l.starts_with("bootcmd=") && !l.starts_with("bootdelay="))
        .collect();
    lines.push("bootdelay=0".into());
    lines.push(format!(
        "bootcmd=virtio scan; if fatload virtio 0:2 ${{loadaddr}} uboot.env; then env import -c ${{loadaddr}} {ENV_SIZE:#x} boot_targets; fi; echo boot_targets=${{boot_targets}}; run distro_bootcmd"
    ));
    lines.join("\n") + "\n"
}

struct Bed {
    dir: tempfile::TempDir,
    port: u16,
    id: PathBuf,
    known: PathBuf,
    bundle: PathBuf,
    emmc: PathBuf,
}

fn keys(dir: &Path, port: u16) -> (PathBuf, PathBuf, PathBuf) {
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

/// A Liminix-shaped closure whose boot files are Debian's armmp zImage and an extlinux.conf.
fn closure_bundle(dir: &Path, zimage: &Path) -> (PathBuf, PathBuf) {
    let store = dir.join("store");
    let ext = store.join(&EXTLINUX[1..]);
    std::fs::create_dir_all(ext.join("extlinux")).unwrap();
    std::fs::write(
        ext.join("extlinux/extlinux.conf"),
        "label liminix\n  kernel /boot/kernel\n  append console=ttyAMA0 root=/dev/mmcblk0p1 rootflags=subvol=@\n",
    )
    .unwrap();
    std::fs::copy(zimage, ext.join("kernel")).unwrap();
    let top = store.join(&TOPLEVEL[1..]);
    std::fs::create_dir_all(top.join("bin")).unwrap();
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(top.join("bin/activate"), "#!/bin/sh\n").unwrap();
    std::fs::write(top.join("bin/init"), "#!/bin/sh\n").unwrap();
    std::fs::write(top.join("etc/nix-store-paths"), format!("{EXTLINUX}\n")).unwrap();
    let (sec, public) = (dir.join("k.sec"), dir.join("k.pub"));
    run(Command::new(pack_binary())
        .args(["keygen", "--secret"])
        .arg(&sec)
        .arg("--public")
        .arg(&public));
    let out = dir.join("system.bundle");
    run(Command::new(pack_binary())
        .args([
            "bundle",
            "--board",
            "turris-omnia",
            "--toplevel",
            TOPLEVEL,
            "--level",
            "3",
        ])
        .arg("--store-root")
        .arg(&store)
        .arg("--key")
        .arg(&sec)
        .arg("--out")
        .arg(&out));
    (out, public)
}

/// The eMMC: MBR, a btrfs with `@` holding the marker system, a FAT with `uboot.env`.
fn emmc(dir: &Path) -> PathBuf {
    let disk = dir.join("emmc.img");
    let end = EMMC[1].0 + EMMC[1].1;
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(end * 512)
        .unwrap();
    let mut sf = Command::new("sfdisk")
        .arg("--quiet")
        .arg(&disk)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let table = format!(
        "label: dos\nstart={}, size={}, type=83, bootable\nstart={}, size={}, type=c\n",
        EMMC[0].0, EMMC[0].1, EMMC[1].0, EMMC[1].1
    );
    std::io::Write::write_all(sf.stdin.as_mut().unwrap(), table.as_bytes()).unwrap();
    drop(sf.stdin.take());
    assert!(sf.wait().unwrap().success());
    let fs = dir.join("btrfs.img");
    std::fs::File::create(&fs)
        .unwrap()
        .set_len(EMMC[0].1 * 512)
        .unwrap();
    run(Command::new("mkfs.btrfs").arg("-q").arg(&fs));
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&fs)
        .arg(&mnt));
    run(Command::new("btrfs")
        .args(["subvolume", "create"])
        .arg(mnt.join("@")));
    std::fs::write(mnt.join("@/marker"), "TurrisOS\n").unwrap();
    run(Command::new("umount").arg(&mnt));
    let vars = dir.join("uboot.env");
    assets::env_image("boot_targets=usb0 virtio0\n", ENV_SIZE, &vars).unwrap();
    let fat = dir.join("env.fat");
    assets::fat_image(&fat, EMMC[1].1 / 2, &[("uboot.env", &vars)]).unwrap();
    for (img, (start, _)) in [(&fs, EMMC[0]), (&fat, EMMC[1])] {
        run(Command::new("dd")
            .arg(format!("if={}", img.display()))
            .arg(format!("of={}", disk.display()))
            .args([
                "bs=512",
                &format!("seek={start}"),
                "conv=notrunc,sparse",
                "status=none",
            ]));
    }
    disk
}

/// The stick: the packer's, with the ARMv7 agent, Debian's armhf busybox and dropbear, and
/// an appended archive of the kernel modules the guest needs.
fn stick(
    dir: &Path,
    a: &debian::Assets,
    host_key: &Path,
    id_pub: &Path,
    trusted: &Path,
) -> PathBuf {
    let agent = liminix_vm::build::armv7_agent_with_ab_apply().unwrap().0;
    let sysroot = liminix_vm::cache_dir("vm-debian").join("armhf-dropbear");
    let script = liminix_vm::workspace_root().join("tests/vm/fetch-debian-dropbear.sh");
    run(Command::new("sh").arg(script).arg("armhf").arg(&sysroot));
    let root = sysroot.join("root");
    let mut extra = Initramfs::new();
    let modules: Vec<String> = [
        "virtio_mmio",
        "virtio_blk",
        "virtio_net",
        // libcrc32c (a btrfs dependency) asks the crypto API for crc32c, a module here.
        "crc32c_generic",
        "btrfs",
        "vfat",
        "nls_cp437",
        "nls_ascii",
    ]
    .map(String::from)
    .to_vec();
    extra.modules(&a.kernel, &modules).unwrap();
    extra.bytes(
        "/etc/modules",
        (modules.join("\n") + "\n").as_bytes(),
        0o644,
    );
    let extra_path = dir.join("modules.cpio");
    extra.write(&extra_path).unwrap();
    let cfg = dir.join("fw_env.config");
    std::fs::write(&cfg, format!("/env/uboot.env 0x0 {ENV_SIZE:#x}\n")).unwrap();
    let out = dir.join("stick.img");
    run(Command::new(pack_binary())
        .arg("recovery")
        .arg("--agent")
        .arg(&agent)
        .arg("--busybox")
        .arg(&a.busybox)
        .arg("--dropbear")
        .arg(root.join("usr/sbin/dropbear"))
        .arg("--lib-root")
        .arg(&root)
        .arg("--authorized-keys")
        .arg(id_pub)
        .arg("--host-key")
        .arg(host_key)
        .args(["--dhcp", "eth0", "--board", "turris-omnia"])
        .arg("--trusted-key")
        .arg(trusted)
        .arg("--fw-env-config")
        .arg(&cfg)
        .arg("--kernel")
        .arg(&a.kernel.image)
        .args(["--append", "console=ttyAMA0 panic=-1"])
        .arg("--append-initramfs")
        .arg(&extra_path)
        .arg("--stick")
        .arg(&out));
    out
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
            self.port.to_string(),
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
        let client = pack_binary().with_file_name("liminix-update");
        Command::new(client)
            .args(["--install", "--agent", "/bin/liminix-agent", "--json"])
            .args(["--boot-targets", "virtio0 usb0"])
            .arg("--bundle")
            .arg(&self.bundle)
            .arg("root@127.0.0.1")
            .env(
                "SSH_COMMAND",
                format!("{ssh} {}", self.ssh_options().join(" ")),
            )
            .output()
            .unwrap()
    }

    /// `@` is the marker system and U-Boot still boots the stick first: the state a cut
    /// install must leave.
    fn vendor_intact(&self, what: &str) {
        let out = self.ok("cat /dest/@/marker; fw_printenv boot_targets");
        assert!(out.contains("TurrisOS"), "{what}: {out}");
        assert!(out.contains("boot_targets=usb0 virtio0"), "{what}: {out}");
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
        ("qemu-system-arm", "qemu-system-arm"),
    ] {
        require_program(tool, package).unwrap();
    }
    let a = debian::assets(Arch::Armhf).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (id, host_key, known) = keys(dir.path(), port);
    let (bundle, trusted) = closure_bundle(dir.path(), &a.kernel.image);
    let stick = stick(
        dir.path(),
        &a,
        &host_key,
        &dir.path().join("id.pub"),
        &trusted,
    );
    let emmc = emmc(dir.path());
    let bed = Bed {
        dir,
        port,
        id,
        known,
        bundle,
        emmc,
    };

    let flash0 = bed.dir.path().join("flash0.img");
    let flash1 = bed.dir.path().join("flash1.img");
    assets::uboot_bank(Path::new(assets::UBOOT_QEMU_ARM), &flash0).unwrap();
    assets::env_bank(&flash1, &uboot_env()).unwrap();
    let launch = Launch {
        program: "qemu-system-arm",
        package: "qemu-system-arm",
        args: [
            "-M",
            "virt",
            "-accel",
            "tcg",
            "-m",
            "512",
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
            "-serial",
            "stdio",
        ]
        .map(String::from)
        .into_iter()
        .chain([
            "-drive".into(),
            format!("if=pflash,format=raw,file={}", flash0.display()),
        ])
        .chain([
            "-drive".into(),
            format!("if=pflash,format=raw,file={}", flash1.display()),
        ])
        .chain(["-device".into(), "usb-ehci".into()])
        .chain([
            "-drive".into(),
            format!("if=none,id=stick,format=raw,file={}", stick.display()),
        ])
        .chain(["-device".into(), "usb-storage,drive=stick".into()])
        .chain([
            "-drive".into(),
            format!("if=none,id=emmc,format=raw,file={}", bed.emmc.display()),
        ])
        .chain(["-device".into(), "virtio-blk-device,drive=emmc".into()])
        .chain([
            "-netdev".into(),
            format!("user,id=n,hostfwd=tcp:127.0.0.1:{port}-:22"),
        ])
        .chain(["-device".into(), "virtio-net-device,netdev=n".into()])
        .collect(),
        stop: None,
        timeout: Duration::from_secs(1500),
    };
    let guest = std::thread::spawn(move || launch.run());
    let start = Instant::now();
    let login = loop {
        let o = bed.ssh("cat /etc/banner; ip -o addr show dev eth0; cat /proc/cmdline");
        if o.status.success() || start.elapsed() > Duration::from_secs(900) || guest.is_finished() {
            break o;
        }
        std::thread::sleep(Duration::from_secs(3));
    };
    if !login.status.success() {
        let _ = bed.ssh("reboot");
        panic!("no ssh login: {}\nguest: {:?}", text(&login), guest.join());
    }
    eprintln!("stick: ssh answered {:?} after power-on", start.elapsed());
    let out = String::from_utf8_lossy(&login.stdout).into_owned();
    assert!(out.contains("inet 10.0.2.15/24"), "DHCP lease: {out}");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&bed)));
    let _ = bed.ssh("sync; reboot");
    let console = guest.join().unwrap().unwrap();
    if let Err(e) = result {
        eprintln!("serial:\n{}", console.serial);
        std::panic::resume_unwind(e);
    }
    let s = &console.serial;
    assert!(s.contains("boot_targets=usb0 virtio0"), "{s}");
    assert!(s.contains("Retrieving file: /boot/initramfs"), "{s}");
    assert!(s.contains("maintenance: ready"), "{s}");
    // The host's libubootenv reads what the agent left in the variables file.
    let vars = bed.dir.path().join("uboot.env.after");
    let img = format!("{}@@{}", bed.emmc.display(), EMMC[1].0 * 512);
    run(Command::new("mcopy")
        .args(["-o", "-i", &img, "::uboot.env"])
        .arg(&vars));
    let cfg = bed.dir.path().join("host-fw_env.config");
    std::fs::write(&cfg, format!("{} 0x0 {ENV_SIZE:#x}\n", vars.display())).unwrap();
    let got = run(Command::new("fw_printenv")
        .arg("-c")
        .arg(&cfg)
        .args(["-n", "boot_targets"]));
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "virtio0 usb0");
}

/// Everything done over ssh while the stick runs.
fn scenario(bed: &Bed) {
    // The variables file stands in for the Omnia's NOR environment: reached as a file here.
    bed.ok("mkdir -p /env && mount -t vfat /dev/vda2 /env");
    let env = bed.ok("fw_printenv boot_targets");
    assert!(env.contains("boot_targets=usb0 virtio0"), "{env}");

    // Cut 1: only `prepare` ran (snapshot taken, new root empty).
    let p = bed.ok("liminix-agent btrfs-install prepare --json");
    assert!(p.contains("\"snapshot_taken\":true"), "{p}");
    bed.vendor_intact("after prepare");
    let flags = bed.ok("cat /proc/mounts; ls -a /dest");
    assert!(flags.contains("@.liminix-new"), "{flags}");

    // Cut 2: the transfer's connection ends after 64 KiB of the bundle.
    let cut = bed.dir.path().join("cut-ssh");
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
    let out = bed.ok("cat /dest/@/marker");
    assert!(out.contains("TurrisOS"), "{out}");
    // restore-snapshot leaves the environment to the user: it still says what the last
    // install set, which the host checks in the file.
    bed.ok("sync; umount /env");
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
