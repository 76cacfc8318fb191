//! `liminix-update` — what `update.sh` runs: sends a signed bundle to a Liminix device over ssh.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use liminix_build_tools::client::{
    update, After, AgentChoice, ImageOutcome, ImageStep, Outcome, Planned, Report, UpdateOptions,
};
use liminix_bundle::wire::AgentEvent;

#[derive(Parser)]
#[command(
    name = "update.sh",
    args_override_self = true,
    version,
    about = "Install this system configuration on a Liminix device over ssh",
    long_about = "Install this system configuration on a Liminix device over ssh.\n\n\
        Sends only the store paths the device lacks (one ssh connection, one round trip to ask), signed\n\
        and compressed; the device verifies everything before it switches generations atomically.\n\
        By default the device then reboots; --fast restarts only the services that changed.\n\n\
        A device without an agent, or with an older one, first gets the agent for its CPU over the\n\
        same connection, into /run/liminix/ (docs/agents.md); --agent PATH names one instead.\n\n\
        SSH_COMMAND replaces `ssh` and may carry options, e.g. SSH_COMMAND=\"ssh -p 2222\".",
    after_help = "Examples:\n  update.sh root@router            install, then reboot\n  update.sh root@router --fast     install, restart changed services\n  update.sh --no-reboot root@router\n  update.sh --try root@router      boot it once by kexec; mark-good keeps it\n  update.sh --root /dest/@ root@liminix-recovery   install from a recovery system\n  update.sh --install root@liminix-recovery        first install onto the Omnia's btrfs @\n\n\
        Exit codes: 0 ok, 1 failure, 2 usage, 3 verification failed, 4 refused (board, epoch, layout),\n  5 no space on the device, 6 device busy, 7 activation or reboot failed, 8 ssh or agent\n  unreachable, 9 no agent carried for the device's CPU (docs/errors.md)."
)]
struct Args {
    /// user@host of the device
    host: String,
    /// Activate now, restarting only changed services, instead of rebooting
    #[arg(long, conflicts_with = "no_reboot")]
    fast: bool,
    /// Install only; the new generation runs from the next boot
    #[arg(long)]
    no_reboot: bool,
    /// Install without making it current, boot it once by kexec; its health check's mark-good
    /// makes it current, a crash or hang returns to the old generation at the next reset
    #[arg(long = "try", conflicts_with_all = ["fast", "no_reboot", "dry_run"])]
    trial: bool,
    /// Root of the target system on the device (e.g. /dest/@ from a recovery system)
    #[arg(long, value_name = "DIR")]
    root: Option<String>,
    /// First install from a recovery stick onto the board's btrfs `@` (Turris Omnia): snapshot
    /// `@`, send into a new root, switch, point U-Boot at the eMMC (docs/recovery-stick.md)
    #[arg(long, conflicts_with_all = ["root", "fast", "dry_run"])]
    install: bool,
    /// With --install: why the snapshot of `@` is taken, part of its name
    #[arg(
        long,
        default_value = "pre-liminix",
        value_name = "TEXT",
        requires = "install"
    )]
    reason: String,
    /// With --install: the U-Boot boot_targets to set afterwards (default: the agent's, the
    /// eMMC first)
    #[arg(long, value_name = "LIST", requires = "install")]
    boot_targets: Option<String>,
    /// The agent program on the device (no version check, nothing sent); default: the device's
    /// liminix-agent if it is new enough, else the carried one for its CPU
    #[arg(long, value_name = "PATH")]
    agent: Option<String>,
    /// Directory with the agents to send (<triple>/liminix-agent and its .sha256; update.sh
    /// passes the ones it carries)
    #[arg(long, value_name = "DIR")]
    agents_dir: Option<PathBuf>,
    /// Bundle file to send (update.sh passes the one built with it)
    #[arg(long, value_name = "FILE", env = "LIMINIX_BUNDLE")]
    bundle: PathBuf,
    /// Print events as JSON lines on stdout instead of a progress bar
    #[arg(long)]
    json: bool,
    /// Directory holding nix/store with the builds the device already runs: changed paths are
    /// then sent as deltas against them
    #[arg(long, value_name = "DIR", default_value = "/")]
    store_root: PathBuf,
    /// Send whole paths even where a delta would be smaller
    #[arg(long)]
    no_delta: bool,
    /// Ask the device what it lacks, say what would be sent, then stop: nothing is sent or
    /// installed (the device's agent must know `receive --dry-run`)
    #[arg(long)]
    dry_run: bool,
    /// Image bundles: the same images without patches (`liminix-pack bundle` without
    /// --delta-base), sent instead when the device does not hold what the patches of --bundle
    /// were made against; without it such a device refuses the update with exit 10
    #[arg(long, value_name = "FILE")]
    full_bundle: Option<PathBuf>,
}

struct Human {
    bar: Option<ProgressBar>,
}

impl Report for Human {
    fn agent(&mut self, choice: &AgentChoice) {
        match choice {
            AgentChoice::Device {
                path,
                version,
                newer: true,
            } => eprintln!(
                "the device's agent {path} ({version}) is newer than this update.sh's ({}): using it",
                liminix_build_tools::bootstrap::OURS
            ),
            AgentChoice::Device { .. } => {}
            AgentChoice::Sent { cpu, bytes } => eprintln!(
                "sent the {cpu} agent ({bytes} bytes) to {}/liminix-agent",
                liminix_build_tools::bootstrap::RUN_DIR
            ),
        }
    }
    fn event(&mut self, e: &AgentEvent) {
        match e {
            AgentEvent::Installed {
                generation,
                toplevel,
                link,
                copied_paths,
                ..
            } => {
                eprintln!("installed generation {generation}: {toplevel} ({copied_paths} paths copied, /persist/{link})")
            }
            AgentEvent::Unchanged { generation, .. } => {
                eprintln!("generation {generation} is already installed: nothing to do")
            }
            AgentEvent::Activated { restarted } => eprintln!(
                "activated; restarted services: {}",
                if restarted.is_empty() {
                    "none".into()
                } else {
                    restarted.join(" ")
                }
            ),
            AgentEvent::Rebooting => eprintln!("device is rebooting"),
            AgentEvent::Trying {
                generation,
                current,
                kernel,
            } => {
                let back =
                    current.map_or("the current one".to_owned(), |c| format!("generation {c}"));
                eprintln!(
                    "generation {generation} is installed but not current; the device boots it \
                     once now (kexec of {kernel}). Its health check's `liminix-agent mark-good` \
                     makes it current; if it crashes or hangs, the next reset boots {back}. \
                     `liminix-agent status` on the device says which happened."
                )
            }
            _ => {}
        }
    }
    fn sending(&mut self, total: u64, paths: usize) {
        if paths == 0 {
            eprintln!("device has every store path already");
            return;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            bar.set_message(format!("sending {paths} paths"));
            self.bar = Some(bar);
        }
    }
    fn sent(&mut self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }
    fn done_sending(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
    fn would_send(&mut self, plan: &[Planned]) {
        let total: u64 = plan.iter().map(|p| p.bytes).sum();
        eprintln!("would send {} paths, {total} bytes:", plan.len());
        for p in plan {
            let how = if p.delta { " (delta)" } else { "" };
            eprintln!("  {} {}{how}", p.bytes, p.path);
        }
    }
    fn image(&mut self, step: &ImageStep) {
        eprintln!("{}", step.sentence());
    }
}

struct Json;

impl Report for Json {
    fn agent(&mut self, choice: &AgentChoice) {
        let line = match choice {
            AgentChoice::Device {
                path,
                version,
                newer,
            } => serde_json::json!({"event": "agent", "source": "device", "path": path,
                "version": version, "newer": newer}),
            AgentChoice::Sent { cpu, bytes } => serde_json::json!({"event": "agent",
                "source": "sent", "cpu": cpu.name(), "bytes": bytes}),
        };
        println!("{line}");
    }
    fn event(&mut self, e: &AgentEvent) {
        print!("{}", e.to_line());
    }
    fn sending(&mut self, total: u64, paths: usize) {
        println!(
            "{}",
            serde_json::json!({"event": "sending", "paths": paths, "bytes": total})
        );
    }
    fn sent(&mut self, _: u64) {}
    fn done_sending(&mut self) {}
    fn would_send(&mut self, plan: &[Planned]) {
        let paths: Vec<_> = plan
            .iter()
            .map(|p| serde_json::json!({"path": p.path, "bytes": p.bytes, "delta": p.delta}))
            .collect();
        let total: u64 = plan.iter().map(|p| p.bytes).sum();
        println!(
            "{}",
            serde_json::json!({"event": "would_send", "paths": plan.len(), "bytes": total,
                "store_paths": paths})
        );
    }
    fn image(&mut self, step: &ImageStep) {
        println!("{}", step.json());
    }
}

/// An image update's last line: from which epoch to which, what was written, bytes sent.
fn image_done(i: &ImageOutcome, json: bool) {
    if json {
        let v = serde_json::json!({"event": "done", "board": i.board, "from_epoch": i.from_epoch,
            "to_epoch": i.to_epoch, "levitated": i.levitated, "sent_bytes": i.sent_bytes,
            "images": i.images, "rebooted": i.rebooted, "dry_run": i.dry_run});
        println!("{v}");
        return;
    }
    if i.dry_run {
        eprintln!("dry run: nothing was sent or written");
        return;
    }
    let images: Vec<String> = i
        .images
        .iter()
        .map(|a| format!("{} {}", a.image, a.sha256.get(..12).unwrap_or(&a.sha256)))
        .collect();
    eprintln!(
        "{}: epoch {} -> {} ({}){}; sent {} bytes{}",
        i.board,
        i.from_epoch,
        i.to_epoch,
        images.join(", "),
        if i.levitated {
            ", written from RAM"
        } else {
            ""
        },
        i.sent_bytes,
        if i.rebooted {
            "; rebooting into it"
        } else {
            ""
        }
    );
}

fn done(o: &Outcome, json: bool) {
    if let Some(i) = &o.image {
        return image_done(i, json);
    }
    match (o.would_install, json) {
        (None, true) => println!(
            "{}",
            serde_json::json!({"event": "done", "sent_paths": o.sent_paths, "sent_bytes": o.sent_bytes})
        ),
        (None, false) => eprintln!("sent {} paths, {} bytes", o.sent_paths, o.sent_bytes),
        (Some(install), true) => println!(
            "{}",
            serde_json::json!({"event": "done", "sent_paths": 0, "sent_bytes": 0,
                "dry_run": true, "would_install": install})
        ),
        (Some(true), false) => eprintln!("dry run: the update would install a new generation"),
        (Some(false), false) => eprintln!("dry run: the update would change nothing"),
    }
}

fn install(
    opts: &UpdateOptions,
    a: &Args,
    report: &mut dyn Report,
) -> Result<(), liminix_build_tools::client::UpdateError> {
    let json = a.json;
    let targets = a.boot_targets.as_deref();
    let i = liminix_build_tools::client::install::install(opts, &a.reason, targets, report)?;
    if let Some(o) = &i.transfer {
        done(o, json);
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "install_finished", "snapshot": i.snapshot, "finish": i.finish})
        );
    } else {
        eprintln!("installed: @ is the new Liminix root; reboot to start it");
        eprintln!(
            "the previous system is snapshot {0}; to go back: ssh to the device and run\n  liminix-agent restore-snapshot {0} && reboot",
            i.snapshot
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let a = Args::parse();
    let opts = UpdateOptions {
        bundle: a.bundle.clone(),
        host: a.host.clone(),
        after: if a.trial {
            After::Try
        } else if a.fast {
            After::Fast
        } else if a.no_reboot {
            After::NoReboot
        } else {
            After::Reboot
        },
        root: a.root.clone(),
        agent: a.agent.clone(),
        agents_dir: a.agents_dir.clone(),
        ssh_command: std::env::var("SSH_COMMAND").unwrap_or_else(|_| "ssh".into()),
        store_root: (!a.no_delta).then_some(a.store_root.clone()),
        dry_run: a.dry_run,
        full_bundle: a.full_bundle.clone(),
    };
    let mut report: Box<dyn Report> = if a.json {
        Box::new(Json)
    } else {
        Box::new(Human { bar: None })
    };
    let result = match a.install {
        true => install(&opts, &a, report.as_mut()),
        false => update(&opts, report.as_mut()).map(|o| done(&o, a.json)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = liminix_bundle::wire::report("update.sh", &e);
            if a.json {
                let mut failed = serde_json::json!({"event": "failed", "message": liminix_bundle::wire::one_line(&e)});
                // The agent's kind, for scripts that act on more than the exit code.
                if let Some(kind) = e.kind() {
                    failed["kind"] = kind.into();
                }
                println!("{failed}");
            }
            eprintln!("{msg}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
