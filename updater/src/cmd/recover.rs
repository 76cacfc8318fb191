use std::path::PathBuf;

use clap::Args;
use liminix_agent::error::Result;
use liminix_agent::flashops::journal_dir::JournalLocation;
use liminix_agent::flashops::progress::reporter;
use liminix_agent::flashops::recovery::{forget, recover_all};
use liminix_agent::flashops::FlashOpError;

use crate::cli::Global;

#[derive(Args)]
#[command(
    after_help = "Run at boot (before anything uses the flash) to finish or roll back image writes that a\n\
    crash or power cut interrupted; flashcp and ubi-update do the same before they start.\n\
    A journal in RAM (no /persist) does not survive a power cut."
)]
pub struct RecoverArgs {
    /// Journal directory (default: ROOT/persist/.liminix/journal)
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// Drop the record KEY (e.g. mtd:kernel, ubi0:rootfs) without touching flash
    #[arg(long, value_name = "KEY")]
    pub forget: Option<String>,
    /// Show progress
    #[arg(short, long)]
    pub verbose: bool,
}

pub fn run(g: &Global, a: &RecoverArgs) -> Result<()> {
    let root = g.device()?;
    let loc = JournalLocation::locate(&root, a.journal.as_deref());
    let _lock = loc.lock()?;
    if let Some(key) = &a.forget {
        let had = forget(&loc, key)?;
        eprintln!(
            "{key}: {}",
            if had { "forgotten" } else { "no such record" }
        );
        return Ok(());
    }
    let mut progress = reporter(a.verbose);
    let lines = recover_all(&root, &loc, progress.as_mut())?;
    drop(progress);
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&lines).expect("serialises")
        );
    } else {
        if let Some(w) = loc.volatility_warning() {
            eprintln!("note: {w}");
        }
        for l in &lines {
            println!("{l}");
        }
        if lines.is_empty() {
            println!("nothing to recover in {}", loc.dir.display());
        }
    }
    match lines.iter().filter(|l| !l.settled()).count() {
        0 => Ok(()),
        n => Err(FlashOpError::Remaining(n).into()),
    }
}
