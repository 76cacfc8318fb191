//! Exercises liminix-ubi against the real UBI driver; built static and run inside
//! the project's QEMU test bed (see tests/tests/vm_mtd_ubi.rs).
//!
//! Each subcommand prints one result line and exits non-zero when a check fails,
//! so the host test can assert on it and cross-check with mtd-utils' ubinfo.

use liminix_testdata::pattern;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use liminix_ubi::{
    attach, detach, open_volume_read, resolve_volume, start_update, UbiDevice, UbiError, VolumeKind,
};

type Res = Result<(), String>;

const ROOT: &str = "/";

fn num(s: &str) -> Result<u64, String> {
    s.parse().map_err(|e| format!("bad number {s:?}: {e}"))
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn dev(n: &str) -> Result<UbiDevice, String> {
    UbiDevice::open(Path::new(ROOT), num(n)? as u32).map_err(s)
}

fn info(n: &str) -> Res {
    let i = dev(n)?.info().map_err(s)?;
    println!(
        "info ubi={} mtd={} leb={} total={} avail={} min_io={} max_vols={} vols={} bad={}",
        i.ubi_num,
        i.mtd_num,
        i.eb_size,
        i.total_ebs,
        i.avail_ebs,
        i.min_io,
        i.max_vol_count,
        i.volumes_count,
        i.bad_peb_count
    );
    Ok(())
}

fn vols(n: &str) -> Res {
    for v in dev(n)?.volumes().map_err(s)? {
        println!(
            "vol id={} name={} kind={:?} reserved={} data_bytes={} corrupted={} upd_marker={}",
            v.id,
            v.name,
            v.kind,
            v.reserved_ebs,
            v.data_bytes,
            u8::from(v.corrupted),
            u8::from(v.upd_marker)
        );
    }
    Ok(())
}

fn mkvol(args: &[String]) -> Res {
    let kind = match args[3].as_str() {
        "static" => VolumeKind::Static,
        _ => VolumeKind::Dynamic,
    };
    let id = args.get(4).map(|a| num(a)).transpose()?.map(|i| i as u32);
    let got = dev(&args[0])?
        .make_volume(&args[1], num(&args[2])?, kind, id)
        .map_err(s)?;
    println!("mkvol name={} id={got}", args[1]);
    Ok(())
}

/// VOLUP with `len` bytes whose last `tail_ff` bytes are 0xFF, written in odd
/// chunks, then read back through the volume node.
fn update(n: &str, id: u64, seed: u64, len: u64, tail_ff: u64) -> Res {
    let ubi = num(n)? as u32;
    let mut data = pattern(seed, len as usize);
    let tail = data.len() - tail_ff as usize;
    data[tail..].fill(0xFF);
    let mut w = start_update(Path::new(ROOT), ubi, id as u32, len).map_err(s)?;
    for chunk in data.chunks(10_007) {
        w.write_all(chunk).map_err(s)?;
    }
    w.finish().map_err(s)?;
    let mut back = Vec::new();
    open_volume_read(Path::new(ROOT), ubi, id as u32)
        .map_err(s)?
        .read_to_end(&mut back)
        .map_err(s)?;
    let equal = back.len() >= data.len() && back[..data.len()] == data[..];
    let rest_ff = back[data.len().min(back.len())..]
        .iter()
        .all(|&b| b == 0xFF);
    println!(
        "update id={id} bytes={len} read={} equal={} rest_ff={}",
        back.len(),
        u8::from(equal),
        u8::from(rest_ff)
    );
    Ok(())
}

/// Announces `announce` bytes, writes fewer: finish() must refuse and the kernel
/// must keep the update marker.
fn partial(n: &str, id: u64, announce: u64, write: u64) -> Res {
    let mut w = start_update(Path::new(ROOT), num(n)? as u32, id as u32, announce).map_err(s)?;
    w.write_all(&pattern(5, write as usize)).map_err(s)?;
    let over = w
        .write(&vec![0u8; (announce - write + 1) as usize])
        .is_err();
    let refused = matches!(w.finish(), Err(UbiError::UpdateSize { .. }));
    println!(
        "partial overwrite_refused={} finish_refused={}",
        u8::from(over),
        u8::from(refused)
    );
    Ok(())
}

/// Starts an update, writes `write` bytes, announces it on the console and
/// waits to be killed: the host's power cut.
fn hang(n: &str, id: u64, announce: u64, write: u64) -> Res {
    let mut w = start_update(Path::new(ROOT), num(n)? as u32, id as u32, announce).map_err(s)?;
    w.write_all(&pattern(9, write as usize)).map_err(s)?;
    // block2mtd sits on a page cache: push what "reached flash" to the disk
    // image before the host pulls the plug.
    rustix::fs::sync();
    println!("hang written={write} of={announce}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn compare(spec: &str, file: &str) -> Res {
    let want = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
    let (ubi, id) = resolve_volume(Path::new(ROOT), spec).map_err(s)?;
    let mut back = vec![0u8; want.len()];
    open_volume_read(Path::new(ROOT), ubi, id)
        .map_err(s)?
        .read_exact(&mut back)
        .map_err(s)?;
    println!(
        "compare spec={spec} ubi={ubi} id={id} equal={}",
        u8::from(back == want)
    );
    Ok(())
}

fn rename(n: &str, pairs: &[String]) -> Res {
    let parsed: Vec<(u32, &str)> = pairs
        .iter()
        .map(|p| {
            let (id, name) = p.split_once(':').ok_or(format!("want ID:NAME, got {p}"))?;
            Ok((num(id)? as u32, name))
        })
        .collect::<Result<_, String>>()?;
    dev(n)?.rename_volumes(&parsed).map_err(s)?;
    println!("rename count={}", parsed.len());
    Ok(())
}

fn run(args: &[String]) -> Res {
    let a = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .ok_or(format!("missing argument {i}"))
    };
    match a(0)? {
        "attach" => {
            let vid = args.get(2).map(|v| num(v)).transpose()?.unwrap_or(0) as u32;
            let n = attach(Path::new(ROOT), num(a(1)?)? as u32, vid).map_err(s)?;
            println!("attach ubi={n}");
            Ok(())
        }
        "detach" => detach(Path::new(ROOT), num(a(1)?)? as u32)
            .map_err(s)
            .map(|()| println!("detach ok=1")),
        "info" => info(a(1)?),
        "vols" => vols(a(1)?),
        "mkvol" => mkvol(&args[1..]),
        "update" => update(a(1)?, num(a(2)?)?, num(a(3)?)?, num(a(4)?)?, num(a(5)?)?),
        "partial" => partial(a(1)?, num(a(2)?)?, num(a(3)?)?, num(a(4)?)?),
        "hang" => hang(a(1)?, num(a(2)?)?, num(a(3)?)?, num(a(4)?)?),
        "compare" => compare(a(1)?, a(2)?),
        "gen" => std::fs::write(a(3)?, pattern(num(a(1)?)?, num(a(2)?)? as usize)).map_err(s),
        "rename" => rename(a(1)?, &args[2..]),
        "rmvol" => dev(a(1)?)?
            .remove_volume(num(a(2)?)? as u32)
            .map_err(s)
            .map(|()| println!("rmvol ok=1")),
        "resize" => dev(a(1)?)?
            .resize_volume(num(a(2)?)? as u32, num(a(3)?)?)
            .map_err(s)
            .map(|()| println!("resize ok=1")),
        other => Err(format!("unknown command {other}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("ubi-probe-error {}: {e}", args.join(" "));
            ExitCode::FAILURE
        }
    }
}
