//! Exercises liminix-mtd against a real MTD driver; built static and run inside
//! the project's QEMU test bed (see tests/tests/vm_mtd_ubi.rs).
//!
//! Each subcommand prints one `key=value` result line and exits non-zero on any
//! failed check, so the host test can both assert and cross-check with mtd-utils.

use std::path::Path;
use std::process::ExitCode;

use liminix_mtd::{sysfs, MtdDevice, MtdError};
use liminix_testdata::pattern;

type Res = Result<(), String>;

fn open(spec: &str, writable: bool) -> Result<MtdDevice, String> {
    let path = sysfs::resolve_device(Path::new("/"), spec).map_err(|e| e.to_string())?;
    MtdDevice::open(&path, writable).map_err(|e| e.to_string())
}

fn num(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("bad number {s:?}: {e}"))
}

fn info(spec: &str) -> Res {
    let dev = open(spec, false)?;
    let i = dev.info();
    let idx: u32 = dev
        .path()
        .to_string_lossy()
        .trim_start_matches("/dev/mtd")
        .parse()
        .unwrap_or(0);
    let sys = sysfs::list(Path::new("/")).map_err(|e| e.to_string())?;
    let entry = sys
        .iter()
        .find(|e| e.index == idx)
        .ok_or("device not in sysfs")?;
    println!(
        "info kind={:?} size={} erase_size={} write_size={} oob_size={} sys_kind={} sys_size={} name={}",
        i.kind, i.size, i.erase_size, i.write_size, i.oob_size, entry.kind, entry.size, entry.name
    );
    Ok(())
}

/// Erase one block, check it reads 0xFF, program a pattern, read it back.
fn rw(spec: &str, block: u64, seed: u64, out: Option<&str>) -> Res {
    let dev = open(spec, true)?;
    let eb = u64::from(dev.info().erase_size);
    let off = block * eb;
    dev.erase(off, eb).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; eb as usize];
    dev.read_at(off, &mut buf).map_err(|e| e.to_string())?;
    if buf.iter().any(|&b| b != 0xFF) {
        return Err(format!("block {block} not 0xFF after erase"));
    }
    let data = pattern(seed, eb as usize);
    dev.write_at(off, &data).map_err(|e| e.to_string())?;
    dev.read_at(off, &mut buf).map_err(|e| e.to_string())?;
    if buf != data {
        return Err(format!("block {block} read-back differs"));
    }
    if let Some(out) = out {
        std::fs::write(out, &data).map_err(|e| e.to_string())?;
    }
    println!("rw block={block} offset={off} bytes={eb} ok=1");
    Ok(())
}

/// The library must refuse misaligned and out-of-range requests before the kernel sees them.
fn refusals(spec: &str) -> Res {
    let dev = open(spec, true)?;
    let i = *dev.info();
    let is_range = |r: Result<(), MtdError>| matches!(r, Err(MtdError::BadRange { .. }));
    let mut checks = vec![
        (
            "erase_misaligned",
            is_range(dev.erase(1, u64::from(i.erase_size))),
        ),
        (
            "erase_past_end",
            is_range(dev.erase(i.size, u64::from(i.erase_size))),
        ),
        (
            "read_past_end",
            is_range(dev.read_at(i.size - 1, &mut [0u8; 2])),
        ),
    ];
    if i.write_size > 1 {
        checks.push((
            "write_misaligned",
            is_range(dev.write_at(1, &vec![0; i.write_size as usize])),
        ));
        checks.push(("write_short", is_range(dev.write_at(0, &[0u8; 1]))));
    }
    let ro = open(spec, false)?;
    checks.push((
        "write_readonly",
        matches!(ro.write_at(0, &[]), Err(MtdError::ReadOnly { .. })),
    ));
    for (name, ok) in &checks {
        if !ok {
            return Err(format!("check {name} failed"));
        }
    }
    println!("refusals checked={}", checks.len());
    Ok(())
}

fn bad(spec: &str, blocks: &[String]) -> Res {
    let dev = open(spec, false)?;
    let eb = u64::from(dev.info().erase_size);
    let mut bad = Vec::new();
    for b in blocks {
        if dev.is_bad(num(b)? * eb).map_err(|e| e.to_string())? {
            bad.push(b.clone());
        }
    }
    println!("bad blocks={}", bad.join(","));
    Ok(())
}

fn mark_bad(spec: &str, block: u64) -> Res {
    let dev = open(spec, true)?;
    let eb = u64::from(dev.info().erase_size);
    dev.mark_bad(block * eb).map_err(|e| e.to_string())?;
    println!(
        "markbad block={block} now_bad={}",
        dev.is_bad(block * eb).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn ecc(spec: &str) -> Res {
    let s = open(spec, false)?.ecc_stats().map_err(|e| e.to_string())?;
    println!(
        "ecc corrected={} failed={} badblocks={} bbtblocks={}",
        s.corrected, s.failed, s.badblocks, s.bbtblocks
    );
    Ok(())
}

/// Re-reads one programmed block until ECC reports corrected bitflips; every
/// read must still return the programmed data.
fn ecc_stress(spec: &str, block: u64, max_reads: u64) -> Res {
    rw(spec, block, 77, None)?;
    let dev = open(spec, false)?;
    let eb = u64::from(dev.info().erase_size);
    let want = pattern(77, eb as usize);
    let before = dev.ecc_stats().map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; eb as usize];
    let mut reads = 0;
    let mut now = before;
    while reads < max_reads && now.corrected == before.corrected {
        dev.read_at(block * eb, &mut buf)
            .map_err(|e| e.to_string())?;
        reads += 1;
        if buf != want {
            return Err(format!("data differs on read {reads} despite ECC"));
        }
        now = dev.ecc_stats().map_err(|e| e.to_string())?;
    }
    println!(
        "eccstress reads={reads} corrected_before={} corrected_after={} failed={}",
        before.corrected, now.corrected, now.failed
    );
    Ok(())
}

/// Reads a block whose page nandsim turns to garbage after a few reads
/// (`gravepages=`): read_at must report the uncorrectable ECC error that
/// read(2) itself hides.
fn ecc_fail(spec: &str, block: u64, max_reads: u64) -> Res {
    rw(spec, block, 78, None)?;
    let dev = open(spec, false)?;
    let eb = u64::from(dev.info().erase_size);
    let before = dev.ecc_stats().map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; eb as usize];
    let mut ok_reads = 0;
    let mut detected = false;
    while ok_reads < max_reads {
        match dev.read_at(block * eb, &mut buf) {
            Ok(()) => ok_reads += 1,
            Err(MtdError::EccFailed { .. }) => {
                detected = true;
                break;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let after = dev.ecc_stats().map_err(|e| e.to_string())?;
    println!(
        "eccfail ok_reads={ok_reads} detected={} failed_before={} failed_after={}",
        u8::from(detected),
        before.failed,
        after.failed
    );
    Ok(())
}

/// Compares flash contents at `offset` with a file (written by flashcp/nandwrite).
fn compare(spec: &str, offset: u64, file: &str) -> Res {
    let want = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
    let dev = open(spec, false)?;
    let mut buf = vec![0u8; want.len()];
    dev.read_at(offset, &mut buf).map_err(|e| e.to_string())?;
    println!(
        "compare bytes={} equal={}",
        want.len(),
        u8::from(buf == want)
    );
    Ok(())
}

fn gen(seed: u64, len: u64, out: &str) -> Res {
    std::fs::write(out, pattern(seed, len as usize)).map_err(|e| e.to_string())
}

fn run(args: &[String]) -> Res {
    let a = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .ok_or(format!("missing argument {i}"))
    };
    match a(0)? {
        "info" => info(a(1)?),
        "rw" => rw(
            a(1)?,
            num(a(2)?)?,
            num(a(3)?)?,
            args.get(4).map(String::as_str),
        ),
        "refusals" => refusals(a(1)?),
        "bad" => bad(a(1)?, &args[2..]),
        "badat" => {
            let off = num(a(2)?)?;
            let bad = open(a(1)?, false)?.is_bad(off).map_err(|e| e.to_string())?;
            println!("badat offset={off} bad={bad}");
            Ok(())
        }
        "markbad" => mark_bad(a(1)?, num(a(2)?)?),
        "ecc" => ecc(a(1)?),
        "eccstress" => ecc_stress(a(1)?, num(a(2)?)?, num(a(3)?)?),
        "eccfail" => ecc_fail(a(1)?, num(a(2)?)?, num(a(3)?)?),
        "compare" => compare(a(1)?, num(a(2)?)?, a(3)?),
        "gen" => gen(num(a(1)?)?, num(a(2)?)?, a(3)?),
        other => Err(format!("unknown command {other}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtd-probe {}: {e}", args.join(" "));
            ExitCode::FAILURE
        }
    }
}
