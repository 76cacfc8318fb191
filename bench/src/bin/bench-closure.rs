//! Closure-update benchmark: the same update (a router-sized closure, 5% of its paths rebuilt)
//! sent to identical devices by four methods, measured in one run: bytes on the TCP connection
//! (both directions, through a counting proxy in front of sshd) and wall time.
//!
//! Methods: this project's `update.sh` (with and without deltas), Liminix's min-copy-closure protocol
//! (per-path `test -e` over `ssh -C -T`, then `find | cpio -H newc -o` into busybox cpio), and
//! `rsync -a` over ssh. Run by `bench/closure-update.sh`; needs root (chroots, sshd).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use liminix_tests::closure::{Closure, ClosureSpec};
use liminix_tests::device::{Device, SshServer};
use liminix_tests::lab::{text, Lab, Pack};

/// Forwards connections to `port`, counting bytes in both directions.
fn counting_proxy(port: u16) -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let local = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(("127.0.0.1", port)).expect("connect sshd");
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        c.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (local, count)
}

/// ssh argv through the proxy.
fn ssh_args(sshd: &SshServer, proxy: u16) -> Vec<String> {
    let mut args = sshd.ssh_args();
    let p = args.iter().position(|a| a == "-p").unwrap();
    args[p + 1] = proxy.to_string();
    args
}

/// A device holding the base closure's store paths, as after the previous update.
fn device_with(lab: &Lab, base: &Closure) -> Device {
    let lab_store = lab.store_root();
    let dev = Device::new().expect("device");
    dev.install_trusted_key("lab.pub", &std::fs::read(&lab.public).unwrap())
        .unwrap();
    for p in &base.paths {
        let st = Command::new("cp")
            .arg("-a")
            .arg(lab_store.join(&p[1..]))
            .arg(dev.path("nix/store"))
            .status()
            .unwrap();
        assert!(st.success());
    }
    copy_with_libs(Path::new("/usr/bin/rsync"), dev.root());
    dev
}

/// Copies a dynamically linked program and the libraries ldd names into a chroot.
fn copy_with_libs(program: &Path, root: &Path) {
    let mut files = vec![program.to_path_buf()];
    files.extend(liminix_vm::initramfs::shared_libs(program).unwrap_or_else(|e| panic!("{e}")));
    for f in files {
        let dest = root.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

fn du(path: &Path) -> u64 {
    let meta = std::fs::symlink_metadata(path).unwrap();
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .unwrap()
        .map(|e| du(&e.unwrap().path()))
        .sum()
}

struct Row {
    method: &'static str,
    bytes: u64,
    secs: f64,
}

fn measure(method: &'static str, count: &AtomicU64, f: impl FnOnce()) -> Row {
    count.store(0, Ordering::Relaxed);
    let t = Instant::now();
    f();
    let secs = t.elapsed().as_secs_f64();
    std::thread::sleep(std::time::Duration::from_millis(200));
    Row {
        method,
        bytes: count.load(Ordering::Relaxed),
        secs,
    }
}

fn ours(lab: &Lab, dev_sshd: &SshServer, proxy: u16, update_sh: &Path, extra: &[&str]) {
    let ssh = format!("ssh {}", ssh_args(dev_sshd, proxy).join(" "));
    let o = Command::new(update_sh)
        .args(extra)
        .args(["--no-reboot", &dev_sshd.host()])
        .env("SSH_COMMAND", ssh)
        .output()
        .unwrap();
    assert!(o.status.success(), "update.sh: {}", text(&o));
    let _ = lab;
}

/// Liminix's min-copy-closure protocol, faithfully: one `ssh -C -T` session, a `test -e` round trip
/// per path, then a newc cpio stream of the missing paths extracted by busybox cpio.
fn min_copy_closure(store_root: &Path, sshd: &SshServer, proxy: u16, paths: &[String]) {
    let mut ssh = Command::new("ssh")
        .args(ssh_args(sshd, proxy))
        .args(["-C", "-T", &sshd.host()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = ssh.stdin.take().unwrap();
    let mut lines = BufReader::new(ssh.stdout.take().unwrap()).lines();
    let mut needed = Vec::new();
    for p in paths {
        writeln!(stdin, "test -e {p} && echo skip || echo {p}").unwrap();
        let reply = lines.next().unwrap().unwrap();
        if reply != "skip" {
            needed.push(p[1..].to_owned());
        }
    }
    stdin
        .write_all(b"cd / && echo ready && cpio -d -i 2>/dev/null; echo finished\n")
        .unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let mut cpio = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find {} | cpio -H newc -o 2>/dev/null",
            needed.join(" ")
        ))
        .current_dir(store_root)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::copy(&mut cpio.stdout.take().unwrap(), &mut stdin).unwrap();
    assert!(cpio.wait().unwrap().success());
    drop(stdin);
    assert_eq!(lines.next().unwrap().unwrap(), "finished");
    assert!(ssh.wait().unwrap().success());
}

fn rsync(store_root: &Path, sshd: &SshServer, proxy: u16, paths: &[String], compress: bool) {
    let list = store_root.join("rsync-files");
    std::fs::write(
        &list,
        paths
            .iter()
            .map(|p| format!("{}\n", &p[1..]))
            .collect::<String>(),
    )
    .unwrap();
    let o = Command::new("rsync")
        .args(if compress {
            vec!["-a", "-r", "-z"]
        } else {
            vec!["-a", "-r"]
        })
        .arg("--files-from")
        .arg(&list)
        .arg("-e")
        .arg(format!("ssh {}", ssh_args(sshd, proxy).join(" ")))
        .arg(format!("{}/", store_root.display()))
        .arg(format!("{}:/", sshd.host()))
        .output()
        .unwrap();
    assert!(o.status.success(), "rsync: {}", text(&o));
}

fn main() {
    let packages: usize = std::env::var("BENCH_PACKAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let bytes: u64 = std::env::var("BENCH_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60_000_000);
    let lab = Lab::new();
    let spec = ClosureSpec {
        packages,
        total_bytes: bytes,
        ..ClosureSpec::router(42)
    };
    let a = lab.generate(&spec);
    let b = lab.derive(&a, &["dhcpc-wan"], 0.05, 43);
    let changed: Vec<&String> = b.paths.iter().filter(|p| !a.paths.contains(p)).collect();
    let changed_bytes: u64 = changed
        .iter()
        .map(|p| du(&lab.store_root().join(&p[1..])))
        .sum();
    eprintln!(
        "closure: {} paths, {} bytes; update: {} new paths, {} bytes",
        b.paths.len(),
        b.bytes,
        changed.len(),
        changed_bytes
    );
    let t = Instant::now();
    let update_sh = lab.updater(
        &b,
        &Pack {
            level: 19,
            ..Pack::default()
        },
    );
    eprintln!(
        "liminix-pack updater (zstd -19, done once at build time): {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut rows = Vec::new();
    let run = |name: &'static str, f: &dyn Fn(&Path, &SshServer, u16)| -> Row {
        let dev = device_with(&lab, &a);
        let sshd = SshServer::start(&dev).expect("sshd");
        let (proxy, count) = counting_proxy(sshd.port());
        let row = measure(name, &count, || f(lab.store_root(), &sshd, proxy));
        for p in &b.paths {
            assert!(dev.path(&p[1..]).exists(), "{name} did not deliver {p}");
        }
        row
    };
    rows.push(run("update.sh (deltas)", &|_, s, p| {
        ours(&lab, s, p, &update_sh, &[])
    }));
    rows.push(run("update.sh --no-delta", &|_, s, p| {
        ours(&lab, s, p, &update_sh, &["--no-delta"])
    }));
    rows.push(run("min-copy-closure (cpio | ssh -C)", &|r, s, p| {
        min_copy_closure(r, s, p, &b.paths)
    }));
    rows.push(run("rsync -a over ssh", &|r, s, p| {
        rsync(r, s, p, &b.paths, false)
    }));
    rows.push(run("rsync -az over ssh", &|r, s, p| {
        rsync(r, s, p, &b.paths, true)
    }));

    let cpio = rows
        .iter()
        .find(|r| r.method.starts_with("min-copy"))
        .map(|r| r.bytes as f64)
        .unwrap();
    let rsync = rows
        .iter()
        .find(|r| r.method == "rsync -a over ssh")
        .map(|r| r.secs)
        .unwrap();
    println!("| method | bytes on the wire | × cpio bytes | wall time (s) | × rsync -a time |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.3} | {:.2} | {:.2} |",
            r.method,
            r.bytes,
            r.bytes as f64 / cpio,
            r.secs,
            r.secs / rsync
        );
    }
}
