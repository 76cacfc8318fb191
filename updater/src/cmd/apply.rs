use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use liminix_agent::apply::{apply, ApplyOptions, ApplyReport};
use liminix_agent::error::{AgentError, Result};
use liminix_agent::flashops::progress::reporter;

use crate::cli::Global;

#[derive(Args)]
#[command(
    after_help = "Checks the signature (ROOT/etc/liminix/trusted-keys), the board (ROOT/etc/liminix/board and\n\
    its board definition), the security epoch and every target's size before anything is written, then\n\
    stages each image (verified against the manifest's sha256) and writes it with the board's\n\
    strategy: raw partitions and UBI volumes as journalled transactions, A/B boards into the\n\
    slot that is not running. See docs/apply.md."
)]
pub struct ApplyArgs {
    /// Bundle file, or - for stdin
    pub bundle: PathBuf,
    /// Directory for the verified images (default: ROOT/run/liminix/staging)
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// Journal directory (default: ROOT/persist/.liminix/journal, or RAM without /persist)
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// Allow in-place UBI updates (old contents lost at once) when a swap does not fit
    #[arg(long)]
    pub in_place: bool,
    /// Reboot when done
    #[arg(long)]
    pub reboot: bool,
    /// Show progress
    #[arg(short, long)]
    pub verbose: bool,
}

pub fn run(g: &Global, a: &ApplyArgs) -> Result<()> {
    let root = g.device()?;
    let opts = ApplyOptions {
        staging: a.staging.clone(),
        journal: a.journal.clone(),
        in_place: a.in_place,
        reboot: a.reboot,
    };
    let mut input: Box<dyn Read> = if a.bundle.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(&a.bundle).map_err(AgentError::io("opening", &a.bundle))?)
    };
    let mut progress = reporter(a.verbose);
    let report = apply(&root, &mut input, &opts, progress.as_mut())?;
    drop(progress);
    print_report(g, &report);
    Ok(())
}

fn print_report(g: &Global, r: &ApplyReport) {
    if g.json {
        println!("{}", serde_json::to_string_pretty(r).expect("serialises"));
        return;
    }
    for i in &r.images {
        let detail = match i.method {
            "raw" => format!(
                "{} blocks rewritten, {} unchanged",
                i.rewritten_blocks, i.unchanged_blocks
            ),
            _ => format!(
                "previous kept as {}",
                i.old_kept_as.as_deref().unwrap_or("-")
            ),
        };
        eprintln!(
            "{} -> {}: {} bytes written and verified ({}; {detail})",
            i.image, i.target, i.bytes, i.method
        );
    }
    if let Some(ab) = &r.ab {
        eprintln!(
            "slot {} written; the next boot tries it (running slot {})",
            ab.to, ab.from
        );
    }
    eprintln!(
        "applied bundle for {} (strategy {}, epoch {})",
        r.board, r.strategy, r.epoch
    );
}
