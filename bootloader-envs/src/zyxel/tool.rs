//! `zyxel-bootconfig DEVICE[:OFFSET] get-status | set-image-status {0|1} STATUS |
//! set-active-image {0|1}` with OpenWrt's output, messages and exit statuses.
//!
//! DEVICE is an MTD character device or a regular file holding the partition (then the
//! erase block is taken as 128 KiB, the NWA50AX NAND block, or the whole file if
//! smaller). The erase block is rewritten only when one of the two bytes changes, and
//! every other byte of the block is kept. Unlike OpenWrt's tool, which always erases
//! block 0 of the device, the block that is rewritten is the one that is erased.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use super::device::BootconfigDevice;
use super::ImageStatus;
use crate::error::EnvError;

/// Runs the tool; `args` without `argv[0]`. Returns the exit status.
pub fn zyxel_bootconfig_main(args: &[OsString], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.len() < 2 {
        return usage(out);
    }
    let (dev, offset) = match args[0].split_once(':') {
        Some((d, o)) => {
            match crate::config::parse_c_int(o).filter(|v| (0..=i64::from(i32::MAX)).contains(v)) {
                Some(o) => (d.to_string(), o.unsigned_abs()),
                None => return usage(out),
            }
        }
        None => (args[0].clone(), 0),
    };
    let mut part = match BootconfigDevice::open(Path::new(&dev), offset) {
        Ok(p) => p,
        Err(e) => {
            let _ = match e {
                EnvError::Geometry(msg) => writeln!(err, "{msg}"),
                _ => writeln!(err, "Could not open mtd device: {dev}"),
            };
            let _ = writeln!(err, "Error opening {dev}!");
            return 1;
        }
    };
    let Ok(mut bc) = part.read() else {
        let _ = writeln!(err, "Error reading bootconfig!");
        return 1;
    };
    match args[1].as_str() {
        "set-image-status" => {
            if args.len() < 4 {
                return usage(out);
            }
            let Some(slot) = slot_arg(&args[2], err) else {
                return 1;
            };
            let Some(st) = ImageStatus::parse(&args[3]) else {
                let _ = writeln!(err, "Invalid image-status!");
                return 1;
            };
            bc.status[slot] = st;
        }
        "set-active-image" => {
            if args.len() < 3 {
                return usage(out);
            }
            let Some(slot) = slot_arg(&args[2], err) else {
                return 1;
            };
            bc.active = slot as u8;
        }
        "get-status" => {
            let _ = write!(
                out,
                "Active Image: {}\nImage 0 Status: {}\nImage 1 Status: {}\n",
                bc.active,
                bc.status[0].name(),
                bc.status[1].name()
            );
            return 0;
        }
        _ => return 0,
    }
    if part.write(&bc).is_err() {
        let _ = writeln!(err, "Error writing bootconfig!");
        return 1;
    }
    0
}

fn usage(out: &mut dyn Write) -> i32 {
    let _ = write!(
        out,
        "Usage: zyxel-bootconfig <mtd-device>[:<offset>] <command> [args]\nAvailable commands:\n\
         \tget-status\n\tset-image-status [0/1] [none,new,valid,invalid]\n\tset-active-image [0/1]\n"
    );
    1
}

/// `atoi` then range check, as the C tool does ("x" counts as 0).
fn slot_arg(s: &str, err: &mut dyn Write) -> Option<usize> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let n: i64 = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |a, d| {
            a.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    let n = if neg { -n } else { n };
    if (0..=1).contains(&n) {
        Some(n as usize)
    } else {
        let _ = writeln!(err, "Invalid image-slot set!");
        None
    }
}
