use clap::Args;
use liminix_agent::closure::activate;
use liminix_agent::error::Result;
use liminix_agent::root::DeviceRoot;

use crate::cli::Global;

#[derive(Args)]
pub struct RollbackArgs {
    /// Generation number to make current (default: the previous one)
    pub generation: Option<u32>,
    /// Allow a generation whose security epoch is below the highest installed
    #[arg(long)]
    pub allow_downgrade: bool,
    /// Reboot into it right away
    #[arg(long)]
    pub reboot: bool,
    /// A/B boards: switch even to a slot marked failed
    #[arg(long)]
    pub force: bool,
}

pub fn run(g: &Global, a: &RollbackArgs) -> Result<()> {
    let root = g.device()?;
    if let Some(board) = liminix_agent::ab::load_slot_layout(&root)? {
        return ab_rollback(g, &root, a, &board);
    }
    let r = liminix_agent::closure::rollback::rollback(&root, a.generation, a.allow_downgrade)?;
    if g.json {
        let mut out = serde_json::json!({"from": r.from, "to": r.to});
        if let Some(d) = &r.skipped {
            out["skipped"] = serde_json::json!(d);
        }
        println!("{out}");
    } else {
        if let Some(d) = &r.skipped {
            eprintln!(
                "the previous generation {} is damaged ({}): rolling back to the newest whole one",
                d.number, d.problem
            );
        }
        let from = r.from.map_or("none".to_owned(), |f| f.to_string());
        eprintln!(
            "rolled back: generation {} is current (was {from}); it runs from the next boot",
            r.to
        );
    }
    if a.reboot {
        activate::reboot()?;
    }
    Ok(())
}

/// A/B boards: cancel a pending trial, or make the other slot the committed one.
fn ab_rollback(
    g: &Global,
    root: &DeviceRoot,
    a: &RollbackArgs,
    board: &liminix_agent::ab::SlotLayout,
) -> Result<()> {
    if a.generation.is_some() {
        return Err(liminix_agent::error::UsageError::AbGeneration.into());
    }
    let (from, to) = liminix_agent::ab::rollback(root, board, a.force)?;
    if g.json {
        println!("{}", serde_json::json!({"from_slot": from, "to_slot": to}));
    } else if from == to {
        eprintln!("pending trial cancelled: slot {to} stays the one that boots");
    } else {
        eprintln!("slot {to} boots from the next reset (was {from})");
    }
    if a.reboot {
        activate::reboot()?;
    }
    Ok(())
}
