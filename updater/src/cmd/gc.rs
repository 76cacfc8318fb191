use clap::Args;
use liminix_agent::error::Result;

use crate::cli::Global;

#[derive(Args)]
pub struct GcArgs {
    /// Also keep the N newest generations (current, previous and booted are always kept)
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub keep: usize,
    /// Only report what would be deleted
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(g: &Global, a: &GcArgs) -> Result<()> {
    let plan = liminix_agent::closure::gc::gc(&g.device()?, a.keep, a.dry_run)?;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("plan serialises")
        );
        return Ok(());
    }
    let verb = if plan.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for p in &plan.deleted_paths {
        println!("{verb} {p}");
    }
    eprintln!(
        "{verb} {} store paths ({} bytes) and {} generation(s); kept generations {:?}",
        plan.deleted_paths.len(),
        plan.freed_bytes,
        plan.removed_generations.len(),
        plan.kept_generations
    );
    Ok(())
}
