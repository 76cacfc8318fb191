//! `mark-good`: confirm the running A/B slot once its health check passes, so the boot
//! loader keeps it; also settles what the last reset means (a rollback is recorded).

use std::time::Duration;

use clap::Args;
use liminix_agent::ab;
use liminix_agent::error::{AgentError, Result, StateError};

use crate::cli::Global;

#[derive(Args)]
pub struct MarkGoodArgs {
    /// Seconds the health check may take (default: `health.deadline_secs` of the slot layout
    /// /etc/liminix/ab.json, else 120)
    #[arg(long, value_name = "SECS")]
    pub deadline: Option<u64>,
    /// s6-rc service that must be up (repeatable; replaces the slot layout's `health.services`)
    #[arg(long = "service", value_name = "NAME")]
    pub services: Vec<String>,
    /// Shell command that must exit 0 (replaces the slot layout's `health.command`)
    #[arg(long, value_name = "CMD")]
    pub check: Option<String>,
    /// Confirm without any health check
    #[arg(long, conflicts_with_all = ["services", "check"])]
    pub no_check: bool,
    /// Show progress (a NOR trial's flash write)
    #[arg(short, long)]
    pub verbose: bool,
}

pub fn run(g: &Global, a: &MarkGoodArgs) -> Result<()> {
    let root = g.device()?;
    // A NOR trial (apply --try) is confirmed by writing its image; A/B boards go on below.
    if let Some(id) = liminix_agent::trial::nor::running_trial(&root)? {
        return nor_trial(g, a, &root, &id);
    }
    // A trial boot of a generation (`receive --try`) is confirmed by making it current.
    if let Some(generation) = liminix_agent::trial::generation::booted_trial(&root) {
        return crate::cmd::trial_good::run(g, &root, generation, a);
    }
    let mut board = ab::load_slot_layout(&root)?.ok_or_else(|| {
        AgentError::State(StateError::NotAb(liminix_agent::root::SLOT_LAYOUT.into()))
    })?;
    if a.no_check {
        board.health = ab::HealthConfig::default();
    }
    if !a.services.is_empty() {
        board.health.services = a.services.clone();
    }
    if a.check.is_some() {
        board.health.command = a.check.clone();
    }
    let m = ab::mark_good(&root, &board, a.deadline.map(Duration::from_secs))?;
    if g.json {
        println!("{}", serde_json::to_string(&m).expect("report serialises"));
    } else if m.already_good {
        eprintln!("slot {} is already the confirmed slot", m.slot);
        eprint!("{}", m.status.render());
    } else {
        eprintln!("slot {} confirmed: the boot loader keeps it", m.slot);
    }
    Ok(())
}

/// `mark-good` in a NOR trial: the health check (`--check`), then the flash write.
fn nor_trial(
    g: &Global,
    a: &MarkGoodArgs,
    root: &liminix_agent::root::DeviceRoot,
    id: &str,
) -> Result<()> {
    if let Some(command) = a.check.as_deref().filter(|_| !a.no_check) {
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", command])
            .status()
            .map_err(AgentError::io("running", "/bin/sh"))?;
        if !status.success() {
            return Err(liminix_agent::trial::TrialError::Health {
                command: command.to_owned(),
                status: status.to_string(),
            }
            .into());
        }
    }
    let mut progress = liminix_agent::flashops::progress::reporter(a.verbose);
    let c = liminix_agent::trial::nor::commit(root, id, progress.as_mut())?;
    drop(progress);
    if g.json {
        println!("{}", serde_json::to_string(&c).expect("report serialises"));
    } else {
        eprintln!(
            "trial {} confirmed: {} written to {} ({} blocks rewritten, {} unchanged); \
             this system runs from RAM, the next boot runs the same image from the flash",
            c.trial,
            c.image.image,
            c.image.target,
            c.image.rewritten_blocks,
            c.image.unchanged_blocks
        );
    }
    Ok(())
}
