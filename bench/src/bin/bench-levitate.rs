//! Levitate benchmark (bench/levitate.sh): one NOR router guest (`liminix_vm::router`, QEMU
//! TCG, block2mtd flash, s6 as PID 1, dropbear) and one run of each of:
//!
//! 1. Liminix's manual path: `liminix-agent levitate` over ssh, then ssh into the maintenance
//!    root, `cat > /tmp/firmware.bin` of firmware B, mtd-utils' `flashcp -v` (the tool
//!    busybox's applet is a port of; Debian's busybox has no such applet) and `reboot`;
//!    measured: seconds from `levitate` to ssh answering there, MemAvailable before and
//!    after, the maintenance root's size, and the whole path until ssh answers on firmware B;
//! 2. `update.sh root@router` with the bundle of firmware A' (another banner), from the same
//!    running guest, until ssh answers on the new firmware.
//!
//! Prints a markdown table; asserts nothing.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use liminix_tests::nor_bed::{events, NorBed};
use liminix_vm::router::Router;

const BOOT: Duration = Duration::from_secs(300);
const SSH: Duration = Duration::from_secs(120);

/// One row of the table.
struct Row {
    what: String,
    value: String,
}

fn row(what: &str, value: String) -> Row {
    Row {
        what: what.into(),
        value,
    }
}

fn kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(key)?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

fn mem_available(r: &Router) -> Result<u64, String> {
    let m = r.ssh_ok("cat /proc/meminfo").map_err(|e| e.to_string())?;
    kib(&m, "MemAvailable:").ok_or_else(|| format!("no MemAvailable in {m}"))
}

/// Polls until ssh answers inside the maintenance root (there is no /run/maintenance there).
fn wait_for_maintenance(r: &Router) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < SSH {
        if r.ssh("test ! -e /run/maintenance")
            .is_ok_and(|s| s.success())
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err("the maintenance root did not answer".into())
}

/// The manual path on the running guest; returns the rows and the seconds it took.
fn manual(r: &mut Router, firmware: &[u8], rows: &mut Vec<Row>) -> Result<(), String> {
    let flashcp =
        std::fs::read("/usr/sbin/flashcp").map_err(|e| format!("mtd-utils flashcp: {e}"))?;
    let before = mem_available(r)?;
    let start = Instant::now();
    let lev = r
        .ssh_ok("liminix-agent --json levitate")
        .map_err(|e| e.to_string())?;
    wait_for_maintenance(r)?;
    let up = start.elapsed();
    let after = mem_available(r)?;
    let du = r.ssh_ok("du -skx /").map_err(|e| e.to_string())?;
    let prepared: serde_json::Value = serde_json::from_str(&lev).map_err(|e| e.to_string())?;
    rows.push(row(
        "`levitate` to ssh answering in the maintenance root (target <= 10 s)",
        format!("{:.1} s", up.as_secs_f64()),
    ));
    rows.push(row(
        "MemAvailable before / in the maintenance root",
        format!(
            "{} KiB / {} KiB ({} KiB used)",
            before,
            after,
            before.saturating_sub(after)
        ),
    ));
    rows.push(row(
        "maintenance root: files in /run (du) / levitate's estimate",
        format!(
            "{} KiB / {} KiB",
            du.split_whitespace().next().unwrap_or("?"),
            prepared["prepared"]["ram_bytes"].as_u64().unwrap_or(0) / 1024
        ),
    ));
    r.ssh_with_input("cat > /tmp/flashcp && chmod 755 /tmp/flashcp", &flashcp)
        .map_err(|e| e.to_string())?;
    let copy = Instant::now();
    r.ssh_with_input("cat > /tmp/firmware.bin", firmware)
        .map_err(|e| e.to_string())?;
    let copied = copy.elapsed();
    let dev = r
        .ssh_ok("sed -n 's/^\\(mtd[0-9]*\\):.*\"firmware\"$/\\1/p' /proc/mtd")
        .map_err(|e| e.to_string())?;
    let write = Instant::now();
    r.ssh_ok(&format!(
        "/tmp/flashcp -v /tmp/firmware.bin /dev/{} >/dev/null 2>&1",
        dev.trim()
    ))
    .map_err(|e| e.to_string())?;
    let written = write.elapsed();
    let _ = r.ssh("reboot");
    r.wait_for_boot(2, BOOT).map_err(|e| e.to_string())?;
    r.wait_for_ssh(SSH).map_err(|e| e.to_string())?;
    rows.push(row(
        "manual: `cat > /tmp/firmware.bin` over ssh",
        format!("{:.1} s, {} bytes", copied.as_secs_f64(), firmware.len()),
    ));
    rows.push(row(
        "manual: mtd-utils `flashcp -v` (erase, write, verify every block)",
        format!("{:.1} s", written.as_secs_f64()),
    ));
    rows.push(row(
        "manual: levitate + copy + flashcp + reboot, until ssh answers on the new firmware",
        format!(
            "{:.1} s, {} bytes sent",
            start.elapsed().as_secs_f64(),
            firmware.len()
        ),
    ));
    Ok(())
}

/// `update.sh` of `bundle` on the running guest, until ssh answers on the new firmware.
fn one_command(
    bed: &NorBed,
    r: &mut Router,
    bundle: &std::path::Path,
    boot: usize,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let bytes = std::fs::metadata(bundle).map_err(|e| e.to_string())?.len();
    let start = Instant::now();
    let out = bed.update_sh(r, bundle, &["--json"]);
    if !out.status.success() {
        return Err(format!("update.sh failed: {:?}", out.status.code()));
    }
    let sent = start.elapsed();
    r.wait_for_boot(boot, BOOT).map_err(|e| e.to_string())?;
    r.wait_for_ssh(SSH).map_err(|e| e.to_string())?;
    let blocks = events(&out, "done")
        .first()
        .map(|d| d["images"][0]["rewritten_blocks"].as_u64().unwrap_or(0))
        .unwrap_or(0);
    let maintenance = events(&out, "maintenance")
        .first()
        .and_then(|m| m["seconds"].as_f64())
        .unwrap_or(f64::NAN);
    rows.push(row(
        "update.sh: levitate to ssh answering in the maintenance root",
        format!("{maintenance:.1} s"),
    ));
    rows.push(row(
        "update.sh: plan + send + verify + levitate + apply, until it returns",
        format!(
            "{:.1} s, {blocks} erase blocks rewritten",
            sent.as_secs_f64()
        ),
    ));
    rows.push(row(
        "update.sh: the whole update, until ssh answers on the new firmware",
        format!(
            "{:.1} s, {bytes} bytes sent (zstd bundle)",
            start.elapsed().as_secs_f64()
        ),
    ));
    Ok(())
}

fn bench() -> Result<Vec<Row>, String> {
    let bed = NorBed::new();
    let a = bed.firmware_with("firmware A", None);
    let b = bed.firmware_with("firmware B", None);
    let a2 = bed.firmware_with("firmware A2", None);
    let bundle = bed.bundle(&a2, "firmware-A2");
    let disk = bed.disk("bench-levitate", &a);
    let mut r = Router::boot(disk.path(), &bed.layout, &bed.keys).map_err(|e| e.to_string())?;
    r.wait_for_boot(1, BOOT).map_err(|e| e.to_string())?;
    r.wait_for_ssh(SSH).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    manual(&mut r, &b, &mut rows)?;
    one_command(&bed, &mut r, &bundle, 3, &mut rows)?;
    let banners = r.banners();
    rows.push(row("boot banners seen", banners.join(", ")));
    r.power_cut();
    Ok(rows)
}

fn main() -> ExitCode {
    match bench() {
        Ok(rows) => {
            println!("| measure (one run, QEMU TCG, 128 KiB erase blocks) | result |");
            println!("|---|---|");
            for r in rows {
                println!("| {} | {} |", r.what, r.value);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-levitate: {e}");
            ExitCode::FAILURE
        }
    }
}
