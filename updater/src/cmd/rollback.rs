use clap::Args;
use liminix_agent::activate;
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
}

pub fn run(g: &Global, a: &RollbackArgs) -> Result<()> {
    let r = liminix_agent::rollback::rollback(
        &DeviceRoot::new(&g.root),
        a.generation,
        a.allow_downgrade,
    )?;
    if g.json {
        println!("{}", serde_json::json!({"from": r.from, "to": r.to}));
    } else {
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
