//! `btrfs-install prepare`/`finish` and `restore-snapshot` on a real btrfs (an image file on a
//! loop device, as the host kernel mounts it), with a device root whose `/sys/class/block` and
//! `/dev` name only that device. Checked with btrfs-progs (`btrfs subvolume list`/`show`),
//! `fw_printenv` (libubootenv) on the environment, and the files themselves.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use liminix_tests::device::pack_binary;

const AGENT: &str = env!("CARGO_BIN_EXE_liminix-agent");
const EXTLINUX: &str = "/nix/store/0k1s7lnw2dy5ah8ylvm6x4a9dhmhnxcz-extlinux";
const TOPLEVEL: &str = "/nix/store/1b8fq3xkcmnqjhhm9ksm1s4d7lg2vdzr-system-configuration";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A loop device holding a btrfs whose `@` is the vendor system (a marker file, its /boot).
struct Emmc {
    loopdev: String,
    _img: tempfile::TempDir,
}

impl Emmc {
    fn new() -> Emmc {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("emmc.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(256 << 20)
            .unwrap();
        run(Command::new("mkfs.btrfs").arg("-q").arg(&img));
        let loopdev = run(Command::new("losetup").args(["-f", "--show"]).arg(&img))
            .trim()
            .to_owned();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        run(Command::new("mount").arg(&loopdev).arg(&mnt));
        run(Command::new("btrfs")
            .args(["subvolume", "create"])
            .arg(mnt.join("@")));
        std::fs::write(mnt.join("@/marker"), "TurrisOS\n").unwrap();
        std::fs::create_dir(mnt.join("@/boot")).unwrap();
        std::fs::write(mnt.join("@/boot/boot.scr"), "vendor").unwrap();
        run(Command::new("umount").arg(&mnt));
        Emmc { loopdev, _img: dir }
    }
}

impl Drop for Emmc {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.loopdev]).status();
    }
}

/// The recovery system's root: block devices, trust, board, fw_env.config.
struct Stick {
    dir: tempfile::TempDir,
    env: PathBuf,
}

impl Stick {
    fn new(emmc: &Emmc, public_key: &Path) -> Stick {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let name = Path::new(&emmc.loopdev).file_name().unwrap();
        std::fs::create_dir_all(r.join("sys/class/block").join(name)).unwrap();
        std::fs::create_dir_all(r.join("sys/class/block/sda1")).unwrap();
        std::fs::create_dir_all(r.join("dev")).unwrap();
        symlink(&emmc.loopdev, r.join("dev").join(name)).unwrap();
        std::fs::write(r.join("dev/sda1"), vec![0u8; 4096]).unwrap();
        std::fs::create_dir_all(r.join("etc/liminix/trusted-keys")).unwrap();
        std::fs::copy(public_key, r.join("etc/liminix/trusted-keys/k.pub")).unwrap();
        std::fs::write(r.join("etc/liminix/board"), "turris-omnia\n").unwrap();
        let env = r.join("uboot-env.img");
        let vars = r.join("vars.txt");
        std::fs::write(&vars, "boot_targets=usb0 mmc0\nbootdelay=0\n").unwrap();
        run(Command::new("mkenvimage")
            .args(["-s", "0x10000", "-o"])
            .arg(&env)
            .arg(&vars));
        let config = format!("{} 0x0 0x10000 0x10000\n", env.display());
        std::fs::write(r.join("etc/fw_env.config"), config).unwrap();
        Stick { dir, env }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn top(&self) -> PathBuf {
        self.root().join("dest")
    }

    fn agent(&self, args: &[&str]) -> Output {
        Command::new(AGENT)
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> serde_json::Value {
        let o = self.agent(&[args, &["--json"]].concat());
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)))
    }

    fn boot_targets(&self) -> String {
        let cfg = self.root().join("etc/fw_env.config");
        run(Command::new("fw_printenv")
            .arg("-c")
            .arg(cfg)
            .args(["-n", "boot_targets"]))
        .trim()
        .to_owned()
    }

    /// `btrfs subvolume list`'s paths, sorted.
    fn subvolumes(&self) -> Vec<String> {
        let mut v: Vec<String> = run(Command::new("btrfs")
            .args(["subvolume", "list"])
            .arg(self.top()))
        .lines()
        .filter_map(|l| l.split(" path ").nth(1).map(str::to_owned))
        .collect();
        v.sort();
        v
    }
}

impl Drop for Stick {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.top()).status();
    }
}

/// A Liminix-shaped closure: a toplevel and its extlinux boot files, signed for the Omnia.
fn bundle(host: &Path) -> (PathBuf, PathBuf) {
    let store = host.join("store");
    let ext = store.join(&EXTLINUX[1..]);
    std::fs::create_dir_all(ext.join("extlinux")).unwrap();
    std::fs::write(
        ext.join("extlinux/extlinux.conf"),
        "label Liminix\n  kernel /boot/kernel\n  append root=/dev/mmcblk0p1 rootflags=subvol=@\n",
    )
    .unwrap();
    std::fs::write(ext.join("kernel"), "zImage").unwrap();
    let top = store.join(&TOPLEVEL[1..]);
    std::fs::create_dir_all(top.join("bin")).unwrap();
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(top.join("bin/activate"), "#!/bin/sh\n").unwrap();
    std::fs::write(top.join("bin/init"), "#!/bin/sh\n").unwrap();
    std::fs::write(top.join("etc/nix-store-paths"), format!("{EXTLINUX}\n")).unwrap();
    let (sec, public) = (host.join("k.sec"), host.join("k.pub"));
    run(Command::new(pack_binary())
        .args(["keygen", "--secret"])
        .arg(&sec)
        .arg("--public")
        .arg(&public));
    let out = host.join("system.bundle");
    run(Command::new(pack_binary())
        .args(["bundle", "--board", "turris-omnia", "--toplevel", TOPLEVEL])
        .arg("--store-root")
        .arg(&store)
        .arg("--key")
        .arg(&sec)
        .arg("--out")
        .arg(&out));
    (out, public)
}

fn receive(stick: &Stick, staging: &str, bundle: &Path) {
    let root = stick.root().join(staging.trim_start_matches('/'));
    // On the stick the agent runs with `/` as the running system and falls back to its
    // /etc/liminix for trust and board; this test's stick is a directory, so the new root gets
    // the same files.
    let etc = root.join("etc/liminix/trusted-keys");
    std::fs::create_dir_all(&etc).unwrap();
    let src = stick.root().join("etc/liminix");
    std::fs::copy(src.join("trusted-keys/k.pub"), etc.join("k.pub")).unwrap();
    std::fs::copy(src.join("board"), root.join("etc/liminix/board")).unwrap();
    let o = Command::new(AGENT)
        .arg("--root")
        .arg(&root)
        .args(["receive", "--no-reboot"])
        .stdin(std::fs::File::open(bundle).unwrap())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(o.status.success(), "receive: {}", text(&o));
}

fn flags(path: &Path) -> String {
    let out = run(Command::new("btrfs").args(["subvolume", "show"]).arg(path));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Flags:").map(|f| f.trim().to_owned()))
        .unwrap()
}

#[test]
fn install_into_at_then_restore_the_snapshot() {
    let host = tempfile::tempdir().unwrap();
    let (bundle, public) = bundle(host.path());
    let emmc = Emmc::new();
    let stick = Stick::new(&emmc, &public);

    let p = stick.ok(&["btrfs-install", "prepare", "--reason", "pre liminix"]);
    let snap = p["snapshot"].as_str().unwrap().to_owned();
    assert!(
        snap.starts_with('@') && snap.ends_with("-pre-liminix"),
        "{snap}"
    );
    assert_eq!(p["next"], "receive");
    assert_eq!(p["snapshot_taken"], true);
    let top = stick.top();
    assert_eq!(flags(&top.join(&snap)), "readonly");
    assert_eq!(stick.subvolumes(), ["@", "@.liminix-new", snap.as_str()]);
    // A second prepare (the run was cut after it) finds the same snapshot and takes no other.
    let again = stick.ok(&["btrfs-install", "prepare"]);
    assert_eq!(again["snapshot"], snap.as_str());
    assert_eq!(again["snapshot_taken"], false);

    // finish before the generation arrived is refused, and changes nothing.
    let o = stick.agent(&["btrfs-install", "finish"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        text(&o).contains("holds no current generation"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read_to_string(top.join("@/marker")).unwrap(),
        "TurrisOS\n"
    );

    receive(&stick, p["staging"].as_str().unwrap(), &bundle);
    assert_eq!(
        std::fs::read_to_string(top.join("@/marker")).unwrap(),
        "TurrisOS\n"
    );

    let f = stick.ok(&["btrfs-install", "finish"]);
    assert_eq!(f["snapshot"], snap.as_str());
    assert_eq!(f["boot_files"], EXTLINUX);
    assert!(!top.join("@/marker").exists());
    assert!(top.join("@/boot/extlinux/extlinux.conf").is_file());
    assert!(top.join(&TOPLEVEL[1..]).starts_with(&top));
    assert!(top
        .join("@")
        .join(&TOPLEVEL[1..])
        .join("bin/activate")
        .is_file());
    assert_eq!(
        std::fs::read_link(top.join("boot")).unwrap(),
        Path::new("@/boot")
    );
    // Through the top-level link, as the boot loader reads it.
    assert!(top.join("boot/extlinux/extlinux.conf").is_file());
    assert_eq!(stick.boot_targets(), "mmc0 nvme0 scsi0 usb0 pxe dhcp");
    assert_eq!(stick.subvolumes(), ["@", snap.as_str()]);
    assert!(!top.join(".liminix-install.json").exists());
    assert_eq!(
        std::fs::read_to_string(top.join(&snap).join("marker")).unwrap(),
        "TurrisOS\n"
    );
    let _ = &stick.env;

    let listed = stick.ok(&["restore-snapshot"]);
    assert_eq!(listed["snapshots"], serde_json::json!([snap]));
    let r = stick.ok(&["restore-snapshot", &snap]);
    let kept = r["kept"].as_str().unwrap().to_owned();
    assert!(kept.ends_with("-before-restore"), "{kept}");
    assert_eq!(
        std::fs::read_to_string(top.join("@/marker")).unwrap(),
        "TurrisOS\n"
    );
    assert_eq!(flags(&top.join("@")), "-");
    assert_eq!(flags(&top.join(&kept)), "readonly");
    assert!(top
        .join(&kept)
        .join("boot/extlinux/extlinux.conf")
        .is_file());
    let mut want = vec!["@".to_owned(), snap.clone(), kept];
    want.sort();
    assert_eq!(stick.subvolumes(), want);
}

/// Each state a cut run can leave, made as the cut would leave it, then the next run.
#[test]
fn a_switch_cut_between_its_renames_is_finished_by_the_next_run() {
    let host = tempfile::tempdir().unwrap();
    let (bundle, public) = bundle(host.path());
    let emmc = Emmc::new();
    let stick = Stick::new(&emmc, &public);
    let p = stick.ok(&["btrfs-install", "prepare"]);
    receive(&stick, p["staging"].as_str().unwrap(), &bundle);
    let top = stick.top();
    // The journal as finish writes it before the switch, and the first rename done: no `@`.
    let journal = top.join(".liminix-install.json");
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, text.replace("\"filling\"", "\"switching\"")).unwrap();
    std::fs::create_dir_all(top.join("@.liminix-new/boot/extlinux")).unwrap();
    std::fs::write(top.join("@.liminix-new/boot/extlinux/extlinux.conf"), "x").unwrap();
    std::fs::rename(top.join("@"), top.join("@.liminix-old")).unwrap();
    // The next run's prepare says only finish is left; finish completes the switch.
    let again = stick.ok(&["btrfs-install", "prepare"]);
    assert_eq!(again["next"], "finish");
    let f = stick.ok(&["btrfs-install", "finish", "--no-bootenv"]);
    assert_eq!(f["boot_files"], serde_json::Value::Null);
    assert!(top.join("@/boot/extlinux/extlinux.conf").is_file());
    assert!(!top.join("@.liminix-old").exists());
    assert_eq!(stick.boot_targets(), "usb0 mmc0");
}

#[test]
fn a_filesystem_without_at_and_unknown_snapshots_are_refused() {
    let host = tempfile::tempdir().unwrap();
    let (_bundle, public) = bundle(host.path());
    let emmc = Emmc::new();
    let stick = Stick::new(&emmc, &public);
    stick.ok(&["btrfs-install", "prepare"]);
    let o = stick.agent(&["restore-snapshot", "@nonesuch"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        text(&o).contains("there is no snapshot @nonesuch"),
        "{}",
        text(&o)
    );
    let o = stick.agent(&["restore-snapshot", "@"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
}
