//! Self-test of the device harness and the closure generator: sshd really
//! chroots, the stand-ins record, generated closures are valid Nix-style
//! store paths and derive as asked.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use liminix_tests::closure::{self, is_store_path, on_disk, Change, Closure, ClosureSpec};
use liminix_tests::device::{convfile_lines, Device, SshServer};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ssh_exec_runs_inside_the_chroot() {
    let dev = Device::builder().board("belkin-rt3200").build().unwrap();
    fs::write(dev.path("/etc/only-on-device"), "x").unwrap();
    let sshd = SshServer::start(&dev).unwrap();
    let out = sshd.ssh_run("echo hi; ls /nix; cat /etc/liminix/board; test -e /etc/only-on-device && test ! -e /usr/sbin/sshd && echo chrooted");
    assert!(
        out.status.success(),
        "ssh failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log_text()
    );
    assert_eq!(stdout(&out), "hi\nstore\nbelkin-rt3200\nchrooted\n");
    assert!(sshd.ssh_command().starts_with("ssh "));
    assert_eq!(sshd.host(), "root@127.0.0.1");
}

/// The min-copy-closure style: commands fed to the remote login shell on
/// stdin of `ssh -C -T`, and a newc cpio stream extracted by busybox cpio.
#[test]
fn ssh_stdin_shell_and_cpio_stream() {
    let dev = Device::builder().build().unwrap();
    let sshd = SshServer::start(&dev).unwrap();
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("payload/dir")).unwrap();
    fs::write(src.path().join("payload/dir/f"), b"bytes\0\x01\x02").unwrap();
    let cpio = Command::new("sh")
        .arg("-c")
        .arg("find payload | busybox cpio -H newc -o 2>/dev/null")
        .current_dir(src.path())
        .output()
        .unwrap();
    assert!(cpio.status.success());
    let mut cmd = Command::new("ssh");
    cmd.args(sshd.ssh_args()).args(["-C", "-T", &sshd.host()]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // ash reads its script in blocks: the stream may only follow once the
    // shell has started cpio, hence the handshake.
    stdin
        .write_all(b"test -e /tmp/payload && echo skip || echo need\n")
        .unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "need");
    stdin
        .write_all(b"cd /tmp && echo ready && cpio -d -i 2>/dev/null; echo finished\n")
        .unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    stdin.write_all(&cpio.stdout).unwrap();
    drop(stdin);
    assert_eq!(lines.next().unwrap().unwrap(), "finished");
    assert!(child.wait().unwrap().success());
    assert_eq!(
        fs::read(dev.path("/tmp/payload/dir/f")).unwrap(),
        b"bytes\0\x01\x02"
    );
}

#[test]
fn device_layout_is_safe_and_liminix_like() {
    let dev = Device::builder().build().unwrap();
    for gone in ["halt", "poweroff", "init", "killall", "sysctl"] {
        assert!(
            dev.path("/bin").join(gone).symlink_metadata().is_err(),
            "{gone} must not exist"
        );
    }
    let reboot = fs::read_to_string(dev.path("/bin/reboot")).unwrap();
    assert!(reboot.contains("recorded-calls"));
    assert_eq!(
        fs::read_link(dev.path("/persist/nix")).unwrap(),
        Path::new("../nix")
    );
    assert!(dev.path("/persist/nix/store").is_dir());
    assert_eq!(
        fs::read_to_string(dev.path("/etc/liminix/board")).unwrap(),
        "qemu\n"
    );
    dev.install_trusted_key("release.pub", b"key").unwrap();
    assert_eq!(
        fs::read(dev.path("/etc/liminix/trusted-keys/release.pub")).unwrap(),
        b"key"
    );
    let out = dev
        .run_in_chroot("head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo ok")
        .unwrap();
    assert_eq!(stdout(&out), "4\nok\n");
    let root = dev.root().to_path_buf();
    drop(dev);
    assert!(!root.exists());
}

#[test]
fn boot_and_standins_record_calls() {
    let dev = Device::builder().build().unwrap();
    let c = closure::generate(dev.root(), &ClosureSpec::small(5)).unwrap();
    dev.install_image(&c.toplevel).unwrap();
    dev.boot_as(&c.toplevel).unwrap();
    assert_eq!(
        fs::read_link(dev.path("/etc/s6-rc/compiled")).unwrap(),
        Path::new(&c.db)
    );
    assert_eq!(
        fs::read_link(dev.path("/run/s6-rc/compiled")).unwrap(),
        Path::new(&c.db)
    );
    assert_eq!(
        fs::read_to_string(dev.path("/etc/generation")).unwrap(),
        format!("{}\n", c.toplevel)
    );
    assert!(dev.path("/persist/activate").is_file());
    assert_eq!(
        fs::read_link(dev.path("/persist/init"))
            .unwrap()
            .parent()
            .unwrap()
            .parent()
            .unwrap(),
        Path::new(
            &c.paths
                .iter()
                .find(|p| p.ends_with("-s6-init-bin"))
                .unwrap()
        )
    );

    // activate honours its ROOT argument (preinit runs `activate /target`),
    // and install copies bin/* etc/* into /persist like Liminix's.
    let script = format!("/persist/activate /tmp/alt && {}/bin/install", c.toplevel);
    let out = dev.run_in_chroot(&script).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_link(dev.path("/tmp/alt/etc/s6-rc/compiled")).unwrap(),
        Path::new(&c.db)
    );
    let installed = fs::read_to_string(dev.path("/persist/nix-store-paths")).unwrap();
    assert_eq!(
        installed.lines().collect::<Vec<_>>(),
        c.store_paths_file_entries()
    );
    assert!(dev.path("/persist/install").is_file());

    let sshd = SshServer::start(&dev).unwrap();
    let out = sshd.ssh_run(
        "printf 'ntp restart\\nfirewall restart\\n' > /tmp/restarts && \
         s6-rc-update -f /tmp/restarts /etc/s6-rc/compiled && s6-rc -u -p change default && sync && reboot",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = dev.recorded_calls();
    assert_eq!(
        calls,
        vec![
            "s6-rc-update -f /tmp/restarts /etc/s6-rc/compiled | convfile: ntp restart; firewall restart".to_string(),
            "s6-rc -u -p change default".to_string(),
            "reboot ".to_string(),
        ]
    );
    assert_eq!(
        convfile_lines(&calls[0]).unwrap(),
        vec!["ntp restart", "firewall restart"]
    );
    // Recorded verbatim, as the real tool does: the link now names a symlink.
    assert_eq!(
        fs::read_link(dev.path("/run/s6-rc/compiled")).unwrap(),
        Path::new("/etc/s6-rc/compiled")
    );
    let bad = sshd.ssh_run("s6-rc-update /nix/store/missing-db");
    assert!(!bad.status.success());
    dev.clear_recorded_calls();
    assert!(dev.recorded_calls().is_empty());
}

#[test]
fn tmpfs_store_keeps_content_and_fills_up() {
    let dev = Device::builder().build().unwrap();
    let c = closure::generate(
        dev.root(),
        &ClosureSpec {
            total_bytes: 200_000,
            ..ClosureSpec::small(2)
        },
    )
    .unwrap();
    dev.mount_tmpfs_store(c.bytes + 2_000_000).unwrap();
    assert!(c.paths.iter().all(|p| on_disk(dev.root(), p).exists()));
    let free = dev.store_free_bytes().unwrap();
    assert!(free < 3_000_000, "tmpfs store reports {free} free");
    let out = dev
        .run_in_chroot("head -c 4000000 /dev/zero > /nix/store/big")
        .unwrap();
    assert!(
        !out.status.success(),
        "writing past the tmpfs size must fail"
    );
    let root = dev.root().to_path_buf();
    drop(dev);
    assert!(!root.exists());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(root.to_str().unwrap()));
}

/// Every `/nix/store/<digest>-<name>` string in a file.
fn references(bytes: &[u8]) -> BTreeSet<String> {
    let needle = b"/nix/store/";
    let mut out = BTreeSet::new();
    for (i, w) in bytes.windows(needle.len()).enumerate() {
        if w != needle {
            continue;
        }
        let rest = &bytes[i..];
        let end = rest[needle.len()..]
            .iter()
            .position(|c| !(c.is_ascii_alphanumeric() || b"+-._?=".contains(c)))
            .map_or(rest.len(), |p| p + needle.len());
        out.insert(String::from_utf8_lossy(&rest[..end]).into_owned());
    }
    out
}

/// Walk one store path: symlinks must resolve inside the closure and every
/// embedded store path must be a closure member.
fn check_tree(store_root: &Path, dir: &Path, members: &BTreeSet<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = p.symlink_metadata().unwrap();
        if meta.file_type().is_symlink() {
            let t = fs::read_link(&p).unwrap();
            let t = t.to_str().unwrap();
            if t.starts_with("/nix/store/") {
                let member = t.split('/').take(4).collect::<Vec<_>>().join("/");
                assert!(
                    members.contains(&member),
                    "{} -> {t} leaves the closure",
                    p.display()
                );
                assert!(
                    on_disk(store_root, t).exists(),
                    "{} -> {t} dangles",
                    p.display()
                );
            } else {
                assert!(
                    p.parent().unwrap().join(t).exists(),
                    "{} -> {t} dangles",
                    p.display()
                );
            }
        } else if meta.is_dir() {
            check_tree(store_root, &p, members);
        } else {
            for r in references(&fs::read(&p).unwrap()) {
                assert!(
                    members.contains(&r),
                    "{} references {r} outside the closure",
                    p.display()
                );
            }
        }
    }
}

fn nar_sha(store_root: &Path, path: &str) -> String {
    let out = Command::new("nix-store")
        .arg("--dump")
        .arg(on_disk(store_root, path))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nix-store --dump {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"\x0d\0\0\0\0\0\0\0nix-archive-1"));
    let sha = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    sha.stdin.as_ref().unwrap().write_all(&out.stdout).unwrap();
    stdout(&sha.wait_with_output().unwrap())
}

#[test]
fn generated_closure_is_valid_and_deterministic() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = ClosureSpec::small(42);
    let ca = closure::generate(a.path(), &spec).unwrap();
    let cb = closure::generate(b.path(), &spec).unwrap();
    assert_eq!(ca, cb);
    assert_ne!(
        ca.toplevel,
        closure::generate(b.path(), &ClosureSpec::small(43))
            .unwrap()
            .toplevel
    );
    assert!(ca.toplevel.ends_with("-system-configuration-x86_64"));
    assert!(ca.paths.contains(&ca.toplevel) && ca.paths.contains(&ca.db));
    assert_eq!(ca.paths.len(), 12 + spec.services.len() + 2);
    let members: BTreeSet<String> = ca.paths.iter().cloned().collect();
    for p in &ca.paths {
        assert!(is_store_path(p), "{p}");
        assert!(on_disk(a.path(), p).is_dir(), "{p} missing");
        check_tree(a.path(), &on_disk(a.path(), p), &members);
        assert_eq!(
            nar_sha(a.path(), p),
            nar_sha(b.path(), p),
            "{p} differs between runs"
        );
    }
    let listed = fs::read_to_string(on_disk(
        a.path(),
        &format!("{}/etc/nix-store-paths", ca.toplevel),
    ))
    .unwrap();
    let listed: Vec<String> = listed.lines().map(str::to_string).collect();
    assert_eq!(listed, ca.store_paths_file_entries());
    let hashes = fs::read_to_string(on_disk(a.path(), &format!("{}/hashes", ca.db))).unwrap();
    for (name, path) in &ca.services {
        let want = if ca.force_restart.contains(name) {
            "force-restart"
        } else {
            path.as_str()
        };
        assert!(
            hashes.lines().any(|l| l == format!("{name} {want}")),
            "{name} not in hashes:\n{hashes}"
        );
    }
    assert_eq!(Closure::load(a.path(), &ca.toplevel).unwrap(), ca);
}

fn ratio(tool: &[&str], data: &[u8]) -> f64 {
    let mut c = Command::new(tool[0])
        .args(&tool[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let data_owned = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data_owned));
    let out = c.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    data.len() as f64 / out.stdout.len() as f64
}

#[test]
fn closure_compresses_like_firmware() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ClosureSpec {
        packages: 60,
        total_bytes: 4_000_000,
        ..ClosureSpec::small(7)
    };
    let c = closure::generate(dir.path(), &spec).unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .args(["-cf", "-", "nix/store"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let zstd = ratio(&["zstd", "-19", "-T2", "-c"], &tar.stdout);
    let gzip = ratio(&["gzip", "-6", "-c"], &tar.stdout);
    println!(
        "closure {} bytes in {} paths: zstd -19 {zstd:.2}x, gzip -6 {gzip:.2}x",
        c.bytes,
        c.paths.len()
    );
    assert!(
        (2.5..4.5).contains(&zstd),
        "zstd ratio {zstd:.2} unrealistic"
    );
    assert!(
        (2.0..4.0).contains(&gzip),
        "gzip ratio {gzip:.2} unrealistic"
    );
}

fn package_paths(c: &Closure) -> BTreeSet<String> {
    let services: BTreeSet<&String> = c.services.values().collect();
    c.paths
        .iter()
        .filter(|p| **p != c.toplevel && **p != c.db && !services.contains(p))
        .cloned()
        .collect()
}

fn file_list(dir: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(".")
        .current_dir(dir)
        .output()
        .unwrap();
    let mut v: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn derive_changes_the_requested_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ClosureSpec {
        packages: 100,
        total_bytes: 1_000_000,
        ..ClosureSpec::small(11)
    };
    let base = closure::generate(dir.path(), &spec).unwrap();
    let change = Change {
        changed_fraction: 0.1,
        changed_services: vec!["ntp".into()],
        seed: 3,
    };
    let next = closure::derive(dir.path(), &base, &change).unwrap();
    let (old, new) = (package_paths(&base), package_paths(&next));
    assert_eq!(old.len(), 100);
    let changed = new.difference(&old).count();
    assert!(
        (8..=10).contains(&changed),
        "{changed} of 100 packages changed, wanted ~10"
    );
    assert_ne!(next.toplevel, base.toplevel);
    assert_ne!(next.db, base.db);
    assert_ne!(next.services["ntp"], base.services["ntp"]);
    let restarts = Closure::restarts_between(&base, &next);
    assert!(restarts.contains("ntp") && restarts.contains("firewall"));
    for p in &next.paths {
        assert!(on_disk(dir.path(), p).is_dir());
    }
    let members: BTreeSet<String> = next.paths.iter().cloned().collect();
    check_tree(dir.path(), &on_disk(dir.path(), &next.toplevel), &members);
    for p in &next.paths {
        check_tree(dir.path(), &on_disk(dir.path(), p), &members);
    }
    // A rebuild keeps the package's shape: same name, same files.
    for p in new.difference(&old) {
        let name = &p[44..];
        let before = old
            .iter()
            .find(|o| &o[44..] == name)
            .expect("rebuilt packages keep their names");
        assert_eq!(
            file_list(&on_disk(dir.path(), before)),
            file_list(&on_disk(dir.path(), p))
        );
    }
    assert_eq!(closure::derive(dir.path(), &base, &change).unwrap(), next);
    let none = Change {
        changed_fraction: 0.0,
        changed_services: vec![],
        seed: 9,
    };
    assert_eq!(
        closure::derive(dir.path(), &base, &none).unwrap().toplevel,
        base.toplevel
    );
    let unknown = Change {
        changed_services: vec!["nope".into()],
        ..none
    };
    assert!(closure::derive(dir.path(), &base, &unknown).is_err());
}

#[test]
fn mkclosure_cli_matches_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_mkclosure");
    let root = dir.path().to_str().unwrap();
    let gen = Command::new(exe)
        .args([
            "gen",
            "--store-root",
            root,
            "--seed",
            "4",
            "--packages",
            "20",
            "--bytes",
            "300000",
        ])
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let spec = ClosureSpec {
        seed: 4,
        packages: 20,
        total_bytes: 300_000,
        services: closure::default_services(),
    };
    let lib = closure::generate(dir.path(), &spec).unwrap();
    assert_eq!(stdout(&gen).trim(), lib.toplevel);
    let derived = Command::new(exe)
        .args([
            "derive",
            "--store-root",
            root,
            "--from",
            &lib.toplevel,
            "--changed-fraction",
            "0.2",
        ])
        .args(["--change-service", "ntp", "--seed", "5", "--json"])
        .output()
        .unwrap();
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&derived.stdout).unwrap();
    let change = Change {
        changed_fraction: 0.2,
        changed_services: vec!["ntp".into()],
        seed: 5,
    };
    let want = closure::derive(dir.path(), &lib, &change).unwrap();
    assert_eq!(json["toplevel"], want.toplevel.as_str());
    assert_eq!(json["paths"].as_array().unwrap().len(), want.paths.len());
}
