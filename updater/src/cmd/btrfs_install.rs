//! `liminix-agent btrfs-install prepare|finish`: the device side of `update.sh --install`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use liminix_agent::btrfs_root::steps;
use liminix_agent::error::Result;

use crate::cli::Global;

/// What U-Boot tries after the install: the eMMC first, as the Turris Omnia ships.
const EMMC_FIRST: &str = "mmc0 nvme0 scsi0 usb0 pxe dhcp";

#[derive(Args)]
pub struct BtrfsInstallArgs {
    #[command(subcommand)]
    pub step: InstallStep,
}

#[derive(Subcommand)]
pub enum InstallStep {
    /// Mount the btrfs, keep `@` as a read-only snapshot, make the empty new root
    Prepare {
        /// The block device holding the btrfs (default: the only one with a btrfs superblock)
        #[arg(long, value_name = "DEV")]
        device: Option<PathBuf>,
        /// Why the snapshot was taken; part of its name
        #[arg(long, default_value = "pre-liminix")]
        reason: String,
    },
    /// Copy the boot files, link `boot`, make the new root `@`, point U-Boot at the eMMC
    Finish {
        #[arg(long, value_name = "DEV")]
        device: Option<PathBuf>,
        /// The U-Boot `boot_targets` to set (through /etc/fw_env.config)
        #[arg(long, default_value = EMMC_FIRST, value_name = "LIST")]
        boot_targets: String,
        /// Leave the U-Boot environment alone
        #[arg(long)]
        no_bootenv: bool,
    },
}

pub fn run(g: &Global, a: &BtrfsInstallArgs) -> Result<()> {
    let root = g.device()?;
    match &a.step {
        InstallStep::Prepare { device, reason } => {
            let p = steps::prepare(&root, device.as_deref(), reason, liminix_agent::now())?;
            if g.json {
                println!("{}", serde_json::to_string(&p).unwrap_or_default());
            } else {
                let how = if p.snapshot_taken {
                    "taken now"
                } else {
                    "taken by an earlier run"
                };
                eprintln!("snapshot of @: {} ({how})", p.snapshot);
                eprintln!("next: {} (new root {})", p.next, p.staging.display());
            }
        }
        InstallStep::Finish {
            device,
            boot_targets,
            no_bootenv,
        } => {
            let targets = (!no_bootenv).then_some(boot_targets.as_str());
            let f = steps::finish(&root, device.as_deref(), targets)?;
            if g.json {
                println!("{}", serde_json::to_string(&f).unwrap_or_default());
            } else {
                eprintln!("installed: @ is the new Liminix root");
                if let Some(t) = &f.boot_targets {
                    eprintln!("U-Boot boot_targets = {t}");
                }
                eprintln!(
                    "the previous system is snapshot {0}; to go back: liminix-agent restore-snapshot {0}, then reboot",
                    f.snapshot
                );
            }
        }
    }
    Ok(())
}
