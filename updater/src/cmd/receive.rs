use std::io::IsTerminal;

use clap::Args;
use liminix_agent::closure::activate;
use liminix_agent::closure::receive::{
    dry_run, receive, receive_for_trial, Events, ReceiveOptions,
};
use liminix_agent::error::Result;
use liminix_agent::error::UsageError;
use liminix_agent::root::DeviceRoot;
use liminix_agent::trial::generation as trial;
use liminix_bundle::wire::{AgentEvent, PROTOCOL};

use crate::cli::Global;

#[derive(Args)]
pub struct ReceiveArgs {
    /// After installing, activate live through s6-rc instead of rebooting
    #[arg(long, conflicts_with = "no_reboot")]
    pub fast: bool,
    /// After installing, do nothing more (the new generation runs from the next boot)
    #[arg(long)]
    pub no_reboot: bool,
    /// Offer older builds only up to this many bytes as delta bases (default: any size, as
    /// patches read their base in bounded windows; 0 disables deltas)
    #[arg(long, value_name = "BYTES")]
    pub delta_max: Option<u64>,
    /// Answer which store paths are wanted, then stop: nothing is read past the manifest and
    /// nothing is written (update.sh --dry-run)
    #[arg(long)]
    pub dry_run: bool,
    /// Install without making the generation current, then boot it once by kexec of the running
    /// kernel; its health check's `mark-good` makes it current, a reset returns to the old one
    #[arg(long = "try", conflicts_with_all = ["fast", "no_reboot", "dry_run"])]
    pub trial: bool,
    /// With --try: the kernel to boot (default /boot/kernel, the running system's)
    #[arg(long, value_name = "FILE", requires = "trial")]
    pub kernel: Option<String>,
    /// With --try: its initramfs (default /boot/initramfs when present)
    #[arg(long, value_name = "FILE", requires = "trial")]
    pub initrd: Option<String>,
}

pub fn run(g: &Global, a: &ReceiveArgs) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    let mut events = Events { out: &mut stdout };
    events.send(&AgentEvent::Hello {
        agent_version: env!("CARGO_PKG_VERSION").into(),
        protocol: PROTOCOL,
    })?;
    // The root is checked after the greeting, so that the client hears why it was refused.
    let result = g
        .device()
        .and_then(|root| receive_and_act(&root, a, &mut events));
    if let Err(e) = &result {
        let _ = events.send(&AgentEvent::Error {
            kind: e.kind(),
            message: e.message(),
        });
    }
    result
}

fn receive_and_act(root: &DeviceRoot, a: &ReceiveArgs, events: &mut Events) -> Result<()> {
    if a.fast && !root.is_live_system() {
        return Err(UsageError::FastWithRoot.into());
    }
    let opts = ReceiveOptions {
        now: liminix_agent::now(),
        delta_max: a.delta_max,
    };
    let stdin = &mut std::io::stdin().lock();
    // When a program reads the events (update.sh over ssh), it words them for the user; a person
    // running the agent on a terminal gets the words here.
    let human = std::io::stdout().is_terminal();
    if a.dry_run {
        let r = dry_run(root, stdin, events, &opts)?;
        if human {
            eprintln!(
                "dry run: {}",
                if r.changed {
                    "the bundle's generation would be installed"
                } else {
                    "the bundle's generation is already current"
                }
            );
        }
        return Ok(());
    }
    if a.trial {
        return receive_and_try(root, a, stdin, events, &opts, human);
    }
    let r = receive(root, stdin, events, &opts)?;
    if r.changed {
        // A new current generation supersedes the record of a failed trial.
        trial::forget(root);
    }
    let top = &r.manifest.generation.toplevel;
    if !r.changed {
        if human {
            eprintln!(
                "generation {} ({top}) is already installed: nothing to do",
                r.generation
            );
        }
        return Ok(());
    }
    if human {
        eprintln!("installed generation {} ({top})", r.generation);
    }
    if a.fast {
        let restarted = activate::fast(root, top)?;
        events.send(&AgentEvent::Activated { restarted })?;
    } else if !a.no_reboot {
        events.send(&AgentEvent::Rebooting)?;
        activate::reboot()?;
    }
    Ok(())
}

/// `--try`: kexec support and the kernel are checked before anything is installed; the new
/// generation is installed without becoming current and booted once.
fn receive_and_try(
    root: &DeviceRoot,
    a: &ReceiveArgs,
    stdin: &mut dyn std::io::Read,
    events: &mut Events,
    opts: &ReceiveOptions,
    human: bool,
) -> Result<()> {
    if !root.is_live_system() {
        return Err(UsageError::TryWithRoot.into());
    }
    let prepared = trial::prepare(root, a.kernel.as_deref(), a.initrd.as_deref())?;
    let r = receive_for_trial(root, stdin, events, opts)?;
    if !r.changed {
        return Ok(());
    }
    trial::forget(root);
    let current = liminix_agent::closure::generations::Generations::new(root).current();
    let loaded = trial::load(root, r.generation, &prepared)?;
    if human {
        eprintln!(
            "installed generation {}, not current; booting it once by kexec of {}",
            r.generation,
            prepared.kernel_path()
        );
    }
    events.send(&AgentEvent::Trying {
        generation: r.generation,
        current,
        kernel: prepared.kernel_path().to_owned(),
    })?;
    Err(trial::start(root, r.generation, loaded))
}
