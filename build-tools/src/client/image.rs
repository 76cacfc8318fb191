//! `update.sh` with an image bundle (flash images, no closure). The agent plans first, from the
//! bundle's header alone (`image-plan`): the checks `apply` makes, whether a raw target is read
//! by the running system, and whether RAM holds a levitated update; nothing has changed when
//! that refuses. A board whose targets are free gets the bundle streamed into `apply`. A NOR
//! board running from its firmware partition gets it into RAM (`image-plan --keep`, which
//! verifies every image), then `levitate --carry` moves it into the maintenance root, the
//! client logs in there (same host key), runs `apply` and `reboot`. docs/levitate.md.

use std::fs::File;
use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use liminix_bundle::stream::Header;
use liminix_bundle::wire::{AgentEvent, ErrorKind};
use liminix_bundle::Manifest;
use serde::Deserialize;

use super::{After, Outcome, Report, UpdateError, UpdateOptions};
use crate::agents;
use crate::bootstrap::{self, AgentChoice, RUN_DIR};

/// Where the bundle waits in RAM, at the same path before and after `levitate`.
pub const KEPT: &str = "/run/liminix/update.bundle";
/// The agent inside the maintenance root (the running one, copied by `levitate`).
const MAINTENANCE_AGENT: &str = "/bin/liminix-agent";
/// How long the maintenance root may take to answer ssh after `levitate`.
const MAINTENANCE_WAIT: Duration = Duration::from_secs(120);
/// One ssh attempt while waiting; a connection to a system that is going away may hang.
const ATTEMPT: Duration = Duration::from_secs(15);
/// True only inside the maintenance root: the bundle is there (it left the old root with
/// `levitate --carry`) and there is no `/run/maintenance` (that is the old root's).
const IN_MAINTENANCE: &str = "test -f /run/liminix/update.bundle && ! test -e /run/maintenance";

/// An image bundle goes to `apply`; one with a closure to `receive`.
pub fn is_image_bundle(m: &Manifest) -> bool {
    m.generation.toplevel.is_empty() && !m.images.is_empty()
}

/// What the device's `image-plan` answered.
#[derive(Clone, Debug, Deserialize)]
pub struct Plan {
    pub board: String,
    pub from_epoch: u64,
    pub to_epoch: u64,
    pub images: Vec<PlannedImage>,
    pub levitate: bool,
    pub needs: RamNeeds,
    pub mem_available: u64,
    pub run_free: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PlannedImage {
    pub image: String,
    pub target: String,
    pub bytes: u64,
    pub in_use_by: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RamNeeds {
    pub bundle: u64,
    pub images: u64,
    pub root: u64,
    pub margin: u64,
}

/// One image as `apply --json` reported it.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct Applied {
    pub image: String,
    pub target: String,
    pub method: String,
    pub bytes: u64,
    pub sha256: String,
    #[serde(default)]
    pub rewritten_blocks: u64,
    #[serde(default)]
    pub unchanged_blocks: u64,
}

#[derive(Debug, Deserialize)]
struct ApplyReport {
    images: Vec<Applied>,
}

/// What an image update did.
#[derive(Clone, Debug)]
pub struct ImageOutcome {
    pub board: String,
    pub from_epoch: u64,
    pub to_epoch: u64,
    pub levitated: bool,
    pub images: Vec<Applied>,
    pub sent_bytes: u64,
    pub rebooted: bool,
    /// `--dry-run`: planned only.
    pub dry_run: bool,
}

/// A step of an image update, as the user sees it.
pub enum ImageStep<'a> {
    Planned(&'a Plan),
    /// The bundle is verified and kept in RAM.
    Kept {
        bytes: u64,
    },
    Levitating,
    /// The maintenance root answered ssh this long after `levitate` returned.
    Maintenance {
        seconds: f64,
    },
    Applied(&'a [Applied]),
    Rebooting,
    /// The device does not hold the bases of the bundle's image patches: the whole images
    /// (`--full-bundle`) are sent instead.
    Fallback {
        why: &'a str,
    },
}

impl ImageStep<'_> {
    pub fn json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            ImageStep::Planned(p) => json!({"event": "image_plan", "board": p.board,
                "from_epoch": p.from_epoch, "to_epoch": p.to_epoch, "levitate": p.levitate,
                "ram_needed": total(&p.needs), "mem_available": p.mem_available,
                "run_free": p.run_free}),
            ImageStep::Kept { bytes } => json!({"event": "kept", "path": KEPT, "bytes": bytes}),
            ImageStep::Levitating => json!({"event": "levitating"}),
            ImageStep::Maintenance { seconds } => {
                json!({"event": "maintenance", "seconds": seconds})
            }
            ImageStep::Applied(images) => json!({"event": "applied", "images": images}),
            ImageStep::Rebooting => json!({"event": "rebooting"}),
            ImageStep::Fallback { why } => json!({"event": "fallback", "reason": why}),
        }
    }

    pub fn sentence(&self) -> String {
        match self {
            ImageStep::Planned(p) if p.levitate => format!(
                "{}: the running system reads {}; the update goes through RAM ({} bytes needed, {} available)",
                p.board,
                in_use(p),
                total(&p.needs),
                p.mem_available
            ),
            ImageStep::Planned(p) => format!("{}: applying from the running system", p.board),
            ImageStep::Kept { bytes } => format!("bundle verified and kept in RAM ({bytes} bytes, {KEPT})"),
            ImageStep::Levitating => "levitating into the maintenance root".into(),
            ImageStep::Maintenance { seconds } => {
                format!("maintenance root answers ssh ({seconds:.1} s after levitate)")
            }
            ImageStep::Applied(images) => images
                .iter()
                .map(|i| {
                    format!(
                        "{} -> {}: {} bytes ({} erase blocks rewritten, {} unchanged)",
                        i.image, i.target, i.bytes, i.rewritten_blocks, i.unchanged_blocks
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            ImageStep::Rebooting => "device is rebooting".into(),
            ImageStep::Fallback { why } => {
                format!("{why}\nsending the whole images of --full-bundle instead")
            }
        }
    }
}

fn in_use(p: &Plan) -> String {
    p.images
        .iter()
        .filter_map(|i| Some(format!("{} ({})", i.target, i.in_use_by.as_deref()?)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn total(n: &RamNeeds) -> u64 {
    n.bundle
        .saturating_add(n.images)
        .saturating_add(n.root)
        .saturating_add(n.margin)
}

/// Runs an image update of `o.bundle`, whose header is `header`.
pub fn update(
    o: &UpdateOptions,
    header: &Header,
    report: &mut dyn Report,
) -> Result<Outcome, UpdateError> {
    if o.after == After::Fast {
        return Err(UpdateError::ImageFast);
    }
    let bundle_bytes = std::fs::metadata(&o.bundle)?.len();
    let (choice, plan) = match ask_plan(o, header, bundle_bytes, report) {
        Err(UpdateError::Agent {
            kind: ErrorKind::BaseMismatch,
            message,
        }) if o.full_bundle.is_some() => return fall_back(o, &message, report),
        r => r?,
    };
    report.image(&ImageStep::Planned(&plan));
    let agent = agent_path(o, choice.as_ref());
    let mut outcome = ImageOutcome {
        board: plan.board.clone(),
        from_epoch: plan.from_epoch,
        to_epoch: plan.to_epoch,
        levitated: plan.levitate,
        images: Vec::new(),
        sent_bytes: 0,
        rebooted: false,
        dry_run: o.dry_run,
    };
    if !o.dry_run {
        let applied = match plan.levitate {
            false => apply_streamed(o, &agent, bundle_bytes, report)?,
            true => apply_levitated(o, &agent, bundle_bytes, report)?,
        };
        report.image(&ImageStep::Applied(&applied));
        outcome.images = applied;
        outcome.sent_bytes = bundle_bytes;
        if o.after == After::Reboot {
            report.image(&ImageStep::Rebooting);
            // The connection ends with the system: its status says nothing.
            let _ = run(o, "reboot", ATTEMPT, true);
            outcome.rebooted = true;
        }
    }
    Ok(Outcome {
        agent: choice,
        sent_paths: 0,
        sent_bytes: outcome.sent_bytes,
        events: Vec::new(),
        would_install: o.dry_run.then_some(true),
        image: Some(outcome),
    })
}

/// The device does not hold what `o.bundle`'s image patches were made against (it said so
/// from the header alone, before anything was sent): the whole images of `o.full_bundle` go
/// instead.
fn fall_back(
    o: &UpdateOptions,
    why: &str,
    report: &mut dyn Report,
) -> Result<Outcome, UpdateError> {
    let full = o.full_bundle.clone().expect("checked by the caller");
    report.image(&ImageStep::Fallback { why });
    let whole = UpdateOptions {
        bundle: full,
        full_bundle: None,
        ..o.clone()
    };
    super::update(&whole, report)
}

/// `image-plan` from the header, through the bootstrap unless `--agent` names the agent.
fn ask_plan(
    o: &UpdateOptions,
    header: &Header,
    bundle_bytes: u64,
    report: &mut dyn Report,
) -> Result<(Option<AgentChoice>, Plan), UpdateError> {
    let args = format!(
        "{} image-plan --json --bundle-bytes {bundle_bytes}",
        root_arg(o)
    );
    let carried = match (&o.agents_dir, &o.agent) {
        (Some(dir), None) => agents::carried(dir)?,
        _ => Vec::new(),
    };
    let command = match &o.agent {
        Some(agent) => format!("{}{args}", super::shell_quote(agent)),
        None => bootstrap::script(&args),
    };
    let mut child = ssh(o, &command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| spawn_err(o, source))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = io::BufReader::new(child.stdout.take().expect("piped"));
    let choice = match &o.agent {
        Some(_) => None,
        None => match bootstrap::converse(&o.host, &mut stdout, &mut stdin, &carried)? {
            Some(c) => Some(c),
            None => return Err(ssh_failed(o, child.wait()?.code())),
        },
    };
    if let Some(c) = &choice {
        report.agent(c);
    }
    let mut bytes = Vec::new();
    header.write(&mut bytes)?;
    // The agent stops reading after the header; it may also have refused earlier.
    let _ = stdin.write_all(&bytes);
    drop(stdin);
    let mut out = String::new();
    stdout.read_to_string(&mut out)?;
    let status = child.wait()?;
    let plan =
        answer::<Plan>(&out).map_err(|e| e.unwrap_or_else(|| ssh_failed(o, status.code())))?;
    Ok((choice, plan))
}

/// The device's answer: one JSON document, or the agent's `error` event.
fn answer<T: serde::de::DeserializeOwned>(out: &str) -> Result<T, Option<UpdateError>> {
    for line in out.lines() {
        if let Ok(AgentEvent::Error { kind, message }) = AgentEvent::from_line(line) {
            return Err(Some(UpdateError::Agent { kind, message }));
        }
    }
    if out.trim().is_empty() {
        return Err(None);
    }
    serde_json::from_str(out).map_err(|source| {
        Some(UpdateError::Garbled {
            line: out.to_owned(),
            source,
        })
    })
}

fn agent_path(o: &UpdateOptions, choice: Option<&AgentChoice>) -> String {
    match (choice, &o.agent) {
        (_, Some(agent)) => agent.clone(),
        (Some(AgentChoice::Device { path, .. }), None) => path.clone(),
        _ => format!("{RUN_DIR}/liminix-agent"),
    }
}

fn root_arg(o: &UpdateOptions) -> String {
    match &o.root {
        Some(root) => format!(" --root {}", super::shell_quote(root)),
        None => String::new(),
    }
}

/// Targets are free: the bundle goes straight into `apply` on the running system.
fn apply_streamed(
    o: &UpdateOptions,
    agent: &str,
    bundle_bytes: u64,
    report: &mut dyn Report,
) -> Result<Vec<Applied>, UpdateError> {
    let command = format!(
        "{}{} --json apply -v -",
        super::shell_quote(agent),
        root_arg(o)
    );
    let out = send_bundle(o, &command, bundle_bytes, report)?;
    Ok(answer::<ApplyReport>(&out.0)
        .map_err(|e| e.unwrap_or_else(|| ssh_failed(o, out.1)))?
        .images)
}

/// Runs `command` with the bundle on its stdin (progress as it goes); its stdout and status.
fn send_bundle(
    o: &UpdateOptions,
    command: &str,
    bundle_bytes: u64,
    report: &mut dyn Report,
) -> Result<(String, Option<i32>), UpdateError> {
    let mut child = ssh(o, command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| spawn_err(o, source))?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    report.sending(bundle_bytes, 1);
    let sent = copy_with_progress(&o.bundle, &mut stdin, report);
    report.done_sending();
    drop(stdin);
    let out = reader.join().expect("reader thread")?;
    let status = child.wait()?;
    match sent {
        // The agent stopped reading: its error, in `out`, says why.
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok((out, status.code())),
    }
}

fn copy_with_progress(
    bundle: &std::path::Path,
    to: &mut impl Write,
    report: &mut dyn Report,
) -> io::Result<()> {
    let mut file = File::open(bundle)?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return to.flush();
        }
        to.write_all(&buf[..n])?;
        report.sent(n as u64);
    }
}

/// The NOR way: bundle into RAM (verified), levitate carrying it, `apply` in the maintenance
/// root.
fn apply_levitated(
    o: &UpdateOptions,
    agent: &str,
    bundle_bytes: u64,
    report: &mut dyn Report,
) -> Result<Vec<Applied>, UpdateError> {
    let quoted = super::shell_quote(agent);
    let keep = format!("{quoted}{} --json image-plan --keep {KEPT}", root_arg(o));
    let (out, status) = send_bundle(o, &keep, bundle_bytes, report)?;
    let kept = answer::<Plan>(&out).map_err(|e| e.unwrap_or_else(|| ssh_failed(o, status)))?;
    report.image(&ImageStep::Kept {
        bytes: kept.needs.bundle,
    });
    report.image(&ImageStep::Levitating);
    let lev = format!("{quoted}{} --json levitate --carry {KEPT}", root_arg(o));
    let (out, status) = run(o, &lev, ATTEMPT, false)?;
    // PID 1 may end the session before the agent's exit status travels back.
    answer::<serde_json::Value>(&out).map_err(|e| e.unwrap_or_else(|| ssh_failed(o, status)))?;
    let seconds = wait_for_maintenance(o)?;
    report.image(&ImageStep::Maintenance { seconds });
    let apply = format!("{MAINTENANCE_AGENT} --json apply -v {KEPT}");
    let (out, status) = run(o, &apply, Duration::from_secs(3600), false)?;
    Ok(answer::<ApplyReport>(&out)
        .map_err(|e| e.unwrap_or_else(|| ssh_failed(o, status)))?
        .images)
}

/// Polls until ssh runs in the maintenance root; seconds it took. The refused connections
/// while one system goes and the other comes are expected, and not shown.
fn wait_for_maintenance(o: &UpdateOptions) -> Result<f64, UpdateError> {
    let start = Instant::now();
    loop {
        if let Ok((_, Some(0))) = run(o, IN_MAINTENANCE, ATTEMPT, true) {
            return Ok(start.elapsed().as_secs_f64());
        }
        if start.elapsed() > MAINTENANCE_WAIT {
            return Err(UpdateError::NoMaintenance {
                host: o.host.clone(),
                secs: MAINTENANCE_WAIT.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn ssh(o: &UpdateOptions, command: &str) -> Command {
    let mut words = o.ssh_command.split_whitespace();
    let mut cmd = Command::new(words.next().unwrap_or("ssh"));
    cmd.args(words).arg(&o.host).arg(command);
    cmd
}

/// Runs `command` (no stdin; stderr passed through unless `quiet`), killing ssh after
/// `limit`; its stdout and exit code.
fn run(
    o: &UpdateOptions,
    command: &str,
    limit: Duration,
    quiet: bool,
) -> Result<(String, Option<i32>), UpdateError> {
    let mut child = ssh(o, command)
        .stdin(Stdio::null())
        .stderr(if quiet {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| spawn_err(o, source))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().expect("reader thread");
    Ok((out, status))
}

fn spawn_err(o: &UpdateOptions, source: io::Error) -> UpdateError {
    UpdateError::Spawn {
        cmd: o.ssh_command.clone(),
        source,
    }
}

fn ssh_failed(o: &UpdateOptions, code: Option<i32>) -> UpdateError {
    UpdateError::Ssh {
        host: o.host.clone(),
        status: code.map_or("killed".into(), |c| c.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_error_event_wins_over_its_answer() {
        let out = "{\"event\":\"error\",\"kind\":\"no_space\",\"message\":\"m\"}\n";
        match answer::<serde_json::Value>(out) {
            Err(Some(UpdateError::Agent { kind, message })) => {
                assert_eq!(kind.as_str(), "no_space");
                assert_eq!(message, "m");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(answer::<serde_json::Value>(" \n"), Err(None)));
        assert!(matches!(
            answer::<Plan>("{}"),
            Err(Some(UpdateError::Garbled { .. }))
        ));
    }
}
