//! Command-line definition of the agent.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use liminix_agent::error::{exit, AgentError};
use liminix_agent::root::DeviceRoot;
use liminix_bundle::wire::AgentEvent;

use crate::cmd;

#[derive(Parser)]
#[command(
    name = "liminix-agent",
    version,
    about = "Installs signed Liminix bundles on this device and manages its generations",
    long_about = "Installs signed Liminix bundles on this device and manages its generations.\n\n\
        Normally driven over ssh by `update.sh root@router`. Bundles must carry a signature by a key\n\
        in /etc/liminix/trusted-keys/ and be built for the board named in /etc/liminix/board.",
    after_help = "Exit codes: 0 ok, 1 failure, 2 usage, 3 verification failed, 4 refused (board, epoch,\n\
        layout, A/B state), 5 no space, 6 busy, 7 activation or reboot failed (docs/errors.md)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// The device's root directory (e.g. /dest/@ when installing from a recovery system)
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Machine-readable output (JSON)
    #[arg(long, global = true)]
    pub json: bool,
}

impl Global {
    /// The device's layout below `--root`, the one every subcommand works on (it must exist).
    pub fn device(&self) -> Result<DeviceRoot, AgentError> {
        DeviceRoot::open(&self.root)
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Read a bundle from stdin, store the missing paths, install the generation
    Receive(cmd::receive::ReceiveArgs),
    /// Show generations (current, previous, booted) and store usage
    Status,
    /// Switch back to the previous generation, or to GENERATION
    Rollback(cmd::rollback::RollbackArgs),
    /// Delete store paths no kept generation references
    Gc(cmd::gc::GcArgs),
    /// Write an image to a raw MTD partition, only the erase blocks that differ (flashcp drop-in)
    Flashcp(cmd::flashcp::FlashcpArgs),
    /// Update a UBI volume: new volume, verify, atomic rename (or --in-place when there is no room)
    UbiUpdate(cmd::ubi_update::UbiUpdateArgs),
    /// Finish or roll back flash writes interrupted by a crash or power cut
    Recover(cmd::recover::RecoverArgs),
    /// A/B boards: confirm the running slot after its health check passes
    MarkGood(cmd::mark_good::MarkGoodArgs),
    /// Write the flash images of a signed bundle with the board's strategy
    Apply(cmd::apply::ApplyArgs),
    /// Check an image bundle from stdin and say whether applying it needs levitate and RAM
    ImagePlan(cmd::image_plan::ImagePlanArgs),
    /// Leave the flash: copy a maintenance system into RAM and have PID 1 switch to it
    Levitate(cmd::levitate::LevitateArgs),
    /// Boot a kernel from a file now, without the boot loader (kexec)
    Kexec(cmd::kexec::KexecArgs),
    /// Print the agent's version and wire protocol revision (--json: what update.sh reads)
    Version,
    /// Install into a btrfs `@` from a recovery system: `prepare` before the transfer, `finish` after
    BtrfsInstall(cmd::btrfs_install::BtrfsInstallArgs),
    /// Make a btrfs snapshot `@` again (without NAME: list the snapshots)
    RestoreSnapshot(cmd::restore_snapshot::RestoreSnapshotArgs),
    /// Run once early at boot: move the previous boot's pstore records to /run/log/previous-boot
    BootLog,
}

pub fn main(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    let result = match &cli.command {
        Command::Receive(a) => cmd::receive::run(&cli.global, a),
        Command::Status => cmd::status::run(&cli.global),
        Command::Rollback(a) => cmd::rollback::run(&cli.global, a),
        Command::Gc(a) => cmd::gc::run(&cli.global, a),
        Command::Flashcp(a) => cmd::flashcp::run(&cli.global, a),
        Command::UbiUpdate(a) => cmd::ubi_update::run(&cli.global, a),
        Command::Recover(a) => cmd::recover::run(&cli.global, a),
        Command::MarkGood(a) => cmd::mark_good::run(&cli.global, a),
        Command::Apply(a) => cmd::apply::run(&cli.global, a),
        Command::ImagePlan(a) => cmd::image_plan::run(&cli.global, a),
        Command::Levitate(a) => cmd::levitate::run(&cli.global, a),
        Command::Kexec(a) => cmd::kexec::run(&cli.global, a),
        Command::Version => cmd::version::run(&cli.global),
        Command::BootLog => cmd::boot_log::run(&cli.global),
        Command::BtrfsInstall(a) => cmd::btrfs_install::run(&cli.global, a),
        Command::RestoreSnapshot(a) => cmd::restore_snapshot::run(&cli.global, a),
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            // `receive` has already sent its error event in the wire conversation.
            if cli.global.json && !matches!(cli.command, Command::Receive(_)) {
                print_json_error(&e);
            }
            report(&e)
        }
    }
}

/// The failure as one JSON line on stdout, the wire's `error` event, so that a script reads the
/// same kind from `liminix-agent --json` as `update.sh` does over ssh.
fn print_json_error(e: &AgentError) {
    let event = AgentEvent::Error {
        kind: e.kind(),
        message: e.message(),
    };
    if let Ok(line) = serde_json::to_string(&event) {
        println!("{line}");
    }
}

/// Prints the error with its chain of causes, each said once.
pub fn report(e: &AgentError) -> i32 {
    eprintln!("{}", liminix_bundle::wire::report("liminix-agent", e));
    e.exit_code()
}
