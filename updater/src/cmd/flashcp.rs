use std::path::PathBuf;

use clap::Args;
use liminix_agent::error::Result;
use liminix_agent::flashops::flashcp_cli::write_summary;
use liminix_agent::flashops::journal_dir::JournalLocation;
use liminix_agent::flashops::progress::reporter;
use liminix_agent::flashops::raw::{flashcp, RawRequest};

use crate::cli::Global;

#[derive(Args)]
#[command(
    after_help = "The agent also answers to the name `flashcp` (mtd-utils 2.1.5 options).\n\
    The journal is ROOT/persist/.liminix/journal; without /persist (agent levitated in RAM)\n\
    it is ROOT/run/liminix/flash-journal and only protects against agent crashes, not power cuts."
)]
pub struct FlashcpArgs {
    /// Show progress (a bar on a terminal, lines otherwise) and a summary
    #[arg(short, long)]
    pub verbose: bool,
    /// Only copy changed blocks (always done; accepted for mtd-utils compatibility)
    #[arg(short = 'p', long = "partition")]
    pub partition: bool,
    /// Also erase every block after the image
    #[arg(short = 'A', long)]
    pub erase_all: bool,
    /// Journal directory (default: ROOT/persist/.liminix/journal)
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// Image file
    pub image: PathBuf,
    /// /dev/mtdN, mtdN, /dev/mtdblockN, mtdblockN or mtd:NAME
    pub device: String,
}

pub fn run(g: &Global, a: &FlashcpArgs) -> Result<()> {
    let root = g.device()?;
    let req = RawRequest {
        image: a.image.clone(),
        device: a.device.clone(),
        erase_all: a.erase_all,
        journal: a.journal.clone(),
    };
    if let Some(w) = JournalLocation::locate(&root, a.journal.as_deref()).volatility_warning() {
        if a.verbose {
            eprintln!("liminix-agent: note: {w}");
        }
    }
    let mut progress = reporter(a.verbose);
    let summary = flashcp(&root, &req, progress.as_mut())?;
    drop(progress);
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("serialises")
        );
    } else if a.verbose {
        write_summary(&summary, &mut std::io::stderr()).ok();
    }
    Ok(())
}
