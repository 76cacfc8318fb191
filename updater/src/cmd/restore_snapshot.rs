//! `liminix-agent restore-snapshot [NAME]`: make a snapshot `@` again (without NAME: list them).

use std::path::PathBuf;

use clap::Args;
use liminix_agent::btrfs_root::restore;
use liminix_agent::error::Result;

use crate::cli::Global;

#[derive(Args)]
pub struct RestoreSnapshotArgs {
    /// The snapshot to make `@` (as `btrfs-install` or schnapps named it)
    pub name: Option<String>,
    /// The block device holding the btrfs (default: the only one with a btrfs superblock)
    #[arg(long, value_name = "DEV")]
    pub device: Option<PathBuf>,
}

pub fn run(g: &Global, a: &RestoreSnapshotArgs) -> Result<()> {
    let root = g.device()?;
    let Some(name) = &a.name else {
        let names = restore::list(&root, a.device.as_deref())?;
        match g.json {
            true => println!("{}", serde_json::json!({ "snapshots": names })),
            false => names.iter().for_each(|n| println!("{n}")),
        }
        return Ok(());
    };
    let r = restore::restore(&root, a.device.as_deref(), name, liminix_agent::now())?;
    if g.json {
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else {
        eprintln!("restored: @ is now a copy of {name}; it boots after `reboot`");
        if let Some(k) = &r.kept {
            eprintln!("the replaced @ is kept as snapshot {k}");
        }
    }
    Ok(())
}
