//! Fleet benchmark: the same kind of update (a router-like closure, 5% of its paths rebuilt) sent
//! to fleets of 20 and 50 device chroots, each behind its own sshd, two ways: the collection's
//! rolling-update playbook with 10 forks, and `update.sh` run once per device, one after another.
//! Measured per way: wall time, the build host's CPU time (user + system of every process the way
//! started), bytes uploaded to the devices and bytes downloaded from them (a counting proxy in
//! front of each sshd). Run by `bench/fleet.sh`; needs root, and ansible-core (scripts/setup.sh).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use liminix_tests::closure::ClosureSpec;
use liminix_tests::fleet::Fleet;
use liminix_tests::lab::{text, Lab, Pack};

/// Bytes through the proxies: to the devices, and back.
#[derive(Default)]
struct Counts {
    up: AtomicU64,
    down: AtomicU64,
}

fn pump(mut from: TcpStream, mut to: TcpStream, count: Arc<Counts>, upload: bool) {
    let mut buf = [0u8; 65536];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        let c = if upload { &count.up } else { &count.down };
        c.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Forwards connections to `port`, counting bytes each way into `count`.
fn counting_proxy(port: u16, count: Arc<Counts>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let local = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(("127.0.0.1", port)).expect("connect sshd");
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (up, down) = (count.clone(), count.clone());
            std::thread::spawn(move || pump(c2, s2, up, true));
            std::thread::spawn(move || pump(server, client, down, false));
        }
    });
    local
}

/// CPU seconds (user + system) of this process's waited-for children so far, from
/// `/proc/self/stat` (`cutime`, `cstime`, in clock ticks of 1/100 s on Linux).
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(13) + ticks(14)) as f64 / 100.0
}

struct Row {
    devices: usize,
    way: String,
    secs: f64,
    cpu: f64,
    up: u64,
    down: u64,
    sent: u64,
}

fn measure(devices: usize, way: String, counts: &Counts, f: impl FnOnce() -> u64) -> Row {
    counts.up.store(0, Ordering::Relaxed);
    counts.down.store(0, Ordering::Relaxed);
    let cpu = children_cpu();
    let t = Instant::now();
    let sent = f();
    let secs = t.elapsed().as_secs_f64();
    std::thread::sleep(std::time::Duration::from_millis(300));
    Row {
        devices,
        way,
        secs,
        cpu: children_cpu() - cpu,
        up: counts.up.load(Ordering::Relaxed),
        down: counts.down.load(Ordering::Relaxed),
        sent,
    }
}

fn spec() -> ClosureSpec {
    let mut s = ClosureSpec::router(1);
    s.packages = env_or("BENCH_PACKAGES", 120) as usize;
    s.total_bytes = env_or("BENCH_BYTES", 8_000_000);
    s
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn playbook(fleet: &Fleet, updater: &std::path::Path, forks: usize) -> u64 {
    let vars = serde_json::json!({
        "liminix_updater": updater, "liminix_serial": [fleet.len()],
        "liminix_max_fail_percentage": 0, "liminix_activate": "none",
    });
    let run = fleet.playbook("rolling-update.yml", &vars, &["-f", &forks.to_string()]);
    assert!(run.output.status.success(), "{}", text(&run.output));
    assert!(
        run.summary.iter().all(|r| r.result == "updated"),
        "{}",
        text(&run.output)
    );
    run.summary.iter().map(|r| r.sent_bytes).sum()
}

fn one_after_another(fleet: &Fleet, updater: &std::path::Path, ports: &[u16]) -> u64 {
    let mut sent = 0;
    for ((_, _, sshd), port) in fleet.members().into_iter().zip(ports) {
        let mut args = sshd.ssh_args();
        let p = args.iter().position(|a| a == "-p").expect("-p");
        args[p + 1] = port.to_string();
        let o = std::process::Command::new(updater)
            .args(["--json", "--no-reboot", &sshd.host()])
            .env("SSH_COMMAND", format!("ssh {}", args.join(" ")))
            .output()
            .expect("update.sh");
        assert!(o.status.success(), "update.sh: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        sent += out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["event"] == "done")
            .filter_map(|e| e["sent_bytes"].as_u64())
            .sum::<u64>();
    }
    sent
}

fn bench(devices: usize, rows: &mut Vec<Row>) {
    let t = Instant::now();
    let mut fleet = Fleet::new(devices);
    let counts = Arc::new(Counts::default());
    let ports: Vec<u16> = fleet
        .members()
        .iter()
        .map(|(_, _, sshd)| counting_proxy(sshd.port(), counts.clone()))
        .collect();
    fleet.set_ports(ports.clone());
    let lab: &Lab = &fleet.lab;
    let gen1 = lab.generate(&spec());
    let gen2 = lab.derive(&gen1, &["firewall"], 0.05, 2);
    let gen3 = lab.derive(&gen2, &["ntp"], 0.05, 3);
    let pack = Pack {
        level: 19,
        ..Pack::default()
    };
    let (up1, up2, up3) = (
        lab.updater(&gen1, &pack),
        lab.updater(&gen2, &pack),
        lab.updater(&gen3, &pack),
    );
    eprintln!(
        "{devices} devices and three updaters: {:.1}s",
        t.elapsed().as_secs_f64()
    );
    rows.push(measure(
        devices,
        "first install, ansible forks 10".into(),
        &counts,
        || playbook(&fleet, &up1, 10),
    ));
    rows.push(measure(
        devices,
        "5% update, ansible forks 10".into(),
        &counts,
        || playbook(&fleet, &up2, 10),
    ));
    rows.push(measure(
        devices,
        "5% update, update.sh one after another".into(),
        &counts,
        || one_after_another(&fleet, &up3, &ports),
    ));
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_FLEETS")
        .unwrap_or_else(|_| "20 50".into())
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let mut rows = Vec::new();
    for n in sizes {
        bench(n, &mut rows);
    }
    let s = spec();
    println!(
        "\nFleet updates: closure of {} packages, ~{} bytes; one run each; sent = bundle bytes the clients report.\n",
        s.packages, s.total_bytes
    );
    println!(
        "| devices | how | seconds | s/device | build-host CPU s | uploaded | downloaded | sent |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.1} | {} | {} | {} |",
            r.devices,
            r.way,
            r.secs,
            r.secs / r.devices as f64,
            r.cpu,
            r.up,
            r.down,
            r.sent
        );
    }
}
