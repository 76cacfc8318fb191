//! Drives liminix-flash against real MTD/UBI devices inside the VM tests
//! (tests/vm_real_devices.rs). Prints one `key=value` line per command.
//!
//! ```text
//! flash-probe gen SEED LEN PATH
//! flash-probe change IN OUT BLOCK_SIZE INDEX...
//! flash-probe raw DEV IMAGE JOURNAL_DIR [hang=BYTES]
//! flash-probe ubi UBI_NUM NAME IMAGE JOURNAL_DIR [inplace] [hang=BYTES]
//! flash-probe recover JOURNAL_DIR
//! flash-probe check UBI_NUM NAME IMAGE
//! flash-probe mounted UBI_NUM NAME
//! flash-probe rollback|gc UBI_NUM NAME
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use liminix_flash::mounts::{volume_mount_point, VolumeRef};
use liminix_flash::txn::{recover, RecoveryEnv, TxError};
use liminix_flash::ubi_update::{gc_old, read_named, rollback};
use liminix_flash::{
    update_raw, update_ubi, FileImage, FileJournal, Flash, ImageSource, MtdFlash, Progress,
    RawOptions, Stage, TxRecord, Ubi, UbiDev, UbiOptions,
};
use liminix_testdata::pattern;

type Res = Result<(), Box<dyn std::error::Error>>;

/// Stops dead (waiting for the host to cut the power) once `at` bytes are written.
struct HangAt(Option<u64>, bool);

impl Progress for HangAt {
    fn begin(&mut self, stage: Stage, _total: u64) {
        self.1 = stage == Stage::Writing;
    }
    fn advance(&mut self, done: u64) {
        if self.1 && self.0.is_some_and(|at| done >= at) {
            // Real MTD writes are synchronous; block2mtd caches them, so push
            // everything written so far to the disk before the host cuts power.
            rustix::fs::sync();
            println!("hang written={done}");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
            }
        }
    }
    fn note(&mut self, msg: &str) {
        println!("note {msg}");
    }
}

fn hang_arg(args: &[String]) -> HangAt {
    let at = args
        .iter()
        .find_map(|a| a.strip_prefix("hang=")?.parse().ok());
    HangAt(at, false)
}

fn ubi_num(s: &str) -> Result<u32, Box<dyn std::error::Error>> {
    Ok(s.trim_start_matches("ubi").parse()?)
}

fn cmd_raw(a: &[String]) -> Res {
    let mut flash = MtdFlash::open(Path::new(&a[0]), true)?;
    let mut journal = FileJournal::open(&a[2])?;
    let src = FileImage::new(&a[1])?;
    let r = update_raw(
        &mut flash,
        &mut journal,
        &a[0],
        &src,
        &RawOptions::default(),
        &mut hang_arg(a),
    )?;
    println!(
        "raw blocks={} rewritten={} unchanged={} skipped_bad={} retired={} bitflips={} sha={}",
        r.blocks,
        r.rewritten_blocks,
        r.unchanged_blocks,
        r.skipped_bad_blocks,
        r.retired_blocks.len(),
        r.corrected_bitflips,
        hex::encode(r.sha256)
    );
    Ok(())
}

fn cmd_ubi(a: &[String]) -> Res {
    let num = ubi_num(&a[0])?;
    let mut ubi = UbiDev::open(Path::new("/"), num)?;
    let mut journal = FileJournal::open(&a[3])?;
    let src = FileImage::new(&a[2])?;
    let opts = UbiOptions {
        force_in_place: a.iter().any(|x| x == "inplace"),
        ..UbiOptions::default()
    };
    let target = format!("ubi{num}");
    let r = update_ubi(
        &mut ubi,
        &mut journal,
        &target,
        &a[1],
        &src,
        &opts,
        &mut hang_arg(a),
    )?;
    let old = r.old_kept_as.unwrap_or_else(|| "-".into());
    println!(
        "ubi strategy={:?} id={} old_kept={old}",
        r.strategy, r.volume_id
    );
    Ok(())
}

/// Opens devices named by journal records, and the staging files they point to.
#[derive(Default)]
struct DeviceEnv {
    flash: Option<MtdFlash>,
    ubi: Option<UbiDev>,
}

fn target_err(rec: &TxRecord, e: impl std::fmt::Display) -> TxError {
    TxError::Target {
        target: rec.target.clone(),
        reason: e.to_string(),
    }
}

impl RecoveryEnv for DeviceEnv {
    fn source(&mut self, rec: &TxRecord) -> Option<Box<dyn ImageSource>> {
        let path = PathBuf::from(rec.source_hint.as_ref()?);
        FileImage::new(path)
            .ok()
            .map(|f| Box::new(f) as Box<dyn ImageSource>)
    }
    fn flash(&mut self, rec: &TxRecord) -> Result<&mut dyn Flash, TxError> {
        let f = MtdFlash::open(Path::new(&rec.target), true).map_err(|e| target_err(rec, e))?;
        Ok(self.flash.insert(f))
    }
    fn ubi(&mut self, rec: &TxRecord) -> Result<&mut dyn Ubi, TxError> {
        let num = ubi_num(&rec.target).map_err(|e| target_err(rec, e))?;
        let u = UbiDev::open(Path::new("/"), num).map_err(|e| target_err(rec, e))?;
        Ok(self.ubi.insert(u))
    }
}

fn cmd_recover(a: &[String]) -> Res {
    let mut journal = FileJournal::open(&a[0])?;
    let done = recover(
        &mut journal,
        &mut DeviceEnv::default(),
        &mut HangAt(None, false),
    )?;
    println!("recover count={}", done.len());
    for (rec, result) in done {
        match result {
            Ok(outcome) => println!("recovered key={} outcome={outcome:?}", rec.key()),
            Err(e) => println!("recovered key={} error={e}", rec.key()),
        }
    }
    Ok(())
}

fn cmd_check(a: &[String]) -> Res {
    let mut ubi = UbiDev::open(Path::new("/"), ubi_num(&a[0])?)?;
    let want = std::fs::read(&a[2])?;
    let got = read_named(&mut ubi, &a[1], want.len() as u64)?;
    println!(
        "check name={} equal={}",
        a[1],
        u8::from(got.as_deref() == Some(&want[..]))
    );
    Ok(())
}

fn cmd_mounted(a: &[String]) -> Res {
    let num = ubi_num(&a[0])?;
    let mut ubi = UbiDev::open(Path::new("/"), num)?;
    let vol = ubi.volume_by_name(&a[1])?.ok_or("no such volume")?;
    let r = VolumeRef {
        ubi_num: num,
        vol_id: vol.id,
        name: &a[1],
    };
    let at = volume_mount_point(Path::new("/"), r)?;
    println!("mounted name={} at={}", a[1], at.as_deref().unwrap_or("-"));
    Ok(())
}

fn cmd_change(a: &[String]) -> Res {
    let mut data = std::fs::read(&a[0])?;
    let bs: usize = a[2].parse()?;
    for idx in &a[3..] {
        let i: usize = idx.parse()?;
        data[i * bs + 11] ^= 0xA5;
    }
    std::fs::write(&a[1], data)?;
    Ok(())
}

fn run(cmd: &str, a: &[String]) -> Res {
    match cmd {
        "gen" => std::fs::write(&a[2], pattern(a[0].parse()?, a[1].parse()?))?,
        "change" => cmd_change(a)?,
        "raw" => cmd_raw(a)?,
        "ubi" => cmd_ubi(a)?,
        "recover" => cmd_recover(a)?,
        "check" => cmd_check(a)?,
        "mounted" => cmd_mounted(a)?,
        "rollback" => println!(
            "rollback done={}",
            rollback(&mut UbiDev::open(Path::new("/"), ubi_num(&a[0])?)?, &a[1])?
        ),
        "gc" => println!(
            "gc done={}",
            gc_old(&mut UbiDev::open(Path::new("/"), ubi_num(&a[0])?)?, &a[1])?
        ),
        _ => return Err(format!("unknown command {cmd}").into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("usage: see the module documentation");
        return ExitCode::from(2);
    };
    match run(cmd, rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = e.source();
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            println!("error {cmd}: {msg}");
            ExitCode::FAILURE
        }
    }
}
