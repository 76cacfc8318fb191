use std::path::PathBuf;

use clap::Args;
use liminix_agent::error::Result;
use liminix_agent::flashops::progress::reporter;
use liminix_agent::flashops::ubi::{ubi_update, UbiRequest};

use crate::cli::Global;

#[derive(Args)]
#[command(
    after_help = "With room for a second copy the image goes to NAME.new, is read back and verified, and one\n\
    UBI_IOCRNVOL makes it NAME (the previous one stays as NAME.old for rollback). Without room,\n\
    --in-place overwrites the volume with UBI_IOCVOLUP; that is refused while it is mounted.\n\
    The journal is ROOT/persist/.liminix/journal; without /persist (agent levitated in RAM)\n\
    it is ROOT/run/liminix/flash-journal and only protects against agent crashes, not power cuts."
)]
pub struct UbiUpdateArgs {
    /// Allow an in-place update (old contents lost at once) when a swap does not fit
    #[arg(long)]
    pub in_place: bool,
    /// Show progress
    #[arg(short, long)]
    pub verbose: bool,
    /// Journal directory (default: ROOT/persist/.liminix/journal)
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// ubiN:NAME (as U-Boot writes it), ubi:NAME, /dev/ubiN_M or ubiN_M
    pub volume: String,
    /// Image file
    pub image: PathBuf,
}

pub fn run(g: &Global, a: &UbiUpdateArgs) -> Result<()> {
    let req = UbiRequest {
        volume: a.volume.clone(),
        image: a.image.clone(),
        in_place: a.in_place,
        journal: a.journal.clone(),
    };
    let mut progress = reporter(a.verbose);
    let s = ubi_update(&g.device()?, &req, progress.as_mut())?;
    drop(progress);
    if g.json {
        println!("{}", serde_json::to_string_pretty(&s).expect("serialises"));
        return Ok(());
    }
    for r in &s.recovered {
        eprintln!("{r}");
    }
    let old = s.old_kept_as.as_deref().unwrap_or("-");
    eprintln!(
        "{}: {} update of {} bytes verified (sha256 {}); volume id {}, previous kept as {old}",
        s.target, s.strategy, s.image_len, s.sha256, s.volume_id
    );
    Ok(())
}
