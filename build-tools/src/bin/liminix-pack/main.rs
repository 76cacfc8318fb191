//! `liminix-pack`: keys, signed bundles and the `update.sh` output, on the build host.

mod bundle;
mod image;
mod inspect;
mod keygen;
mod recovery;
mod stick;
mod updater;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "liminix-pack",
    version,
    about = "Make keys, signed Liminix bundles, update.sh outputs and board images",
    after_help = "Exit codes: 0 ok, 1 failure, 2 usage (docs/errors.md)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make an ed25519 signing key pair (the public file goes into /etc/liminix/trusted-keys/)
    Keygen(keygen::Args),
    /// Pack a system configuration's closure, flash images or both into a signed bundle
    Bundle(bundle::Args),
    /// Check a bundle completely: signature by the given key, every payload hash
    Verify(verify::Args),
    /// Write every output a board declares (kernel, firmware.bin, UBI, disk, TFTP images)
    Image(image::Args),
    /// Show what a bundle or an image file (uImage, FIT, MBR disk, UBI, squashfs, firmware.bin) holds
    Inspect(inspect::Args),
    /// Write DIR/bin/update.sh with the signed bundle baked in (the shape of outputs.updater)
    Updater(updater::Args),
    /// Write the maintenance root (levitate's) as an initramfs: agent, busybox, dropbear, keys
    Recovery(recovery::Args),
}

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r: Result = match cli.command {
        Command::Keygen(a) => keygen::run(a),
        Command::Bundle(a) => bundle::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Image(a) => image::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Updater(a) => updater::run(a),
        Command::Recovery(a) => recovery::run(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{}",
                liminix_bundle::wire::report("liminix-pack", e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}
