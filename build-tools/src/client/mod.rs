//! The update client behind `update.sh`: one ssh connection, one round trip to learn what the
//! device lacks, then only those entries, already zstd-compressed, straight from the bundle file.
//! Unless an agent is named, the same connection first makes sure a fitting agent runs on the
//! device ([`crate::bootstrap`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use liminix_bundle::storepath::StorePath;
use liminix_bundle::stream::{self, ChunkReader, ChunkWriter, Encoding, EntryHeader, EntryKind};
use liminix_bundle::wire::{AgentEvent, DeltaBase};
use liminix_bundle::{delta, delta_patch, nar};

use crate::agents::{self, Carried};
use crate::bootstrap;
pub use crate::bootstrap::AgentChoice;
use crate::pack::{index, EntryLocation};

mod error;
pub mod image;
pub mod install;
pub use error::{exit, UpdateError};
pub use image::{ImageOutcome, ImageStep};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Reboot,
    Fast,
    NoReboot,
    /// Install without switching, then boot the generation once by kexec (`receive --try`).
    Try,
}

#[derive(Clone)]
pub struct UpdateOptions {
    pub bundle: PathBuf,
    pub host: String,
    pub after: After,
    pub root: Option<String>,
    /// The agent program on the device; `None`: find or send one ([`crate::bootstrap`]).
    pub agent: Option<String>,
    /// The agents this client may send (`<triple>/liminix-agent`); `None`: it sends none.
    pub agents_dir: Option<PathBuf>,
    /// The ssh program and its options, from `SSH_COMMAND` (default `ssh`).
    pub ssh_command: String,
    /// Directory holding `nix/store` with older builds to make deltas from (`None`: no deltas).
    pub store_root: Option<PathBuf>,
    /// Ask what the device lacks, report what would be sent, send nothing ([`Planned`]).
    pub dry_run: bool,
    /// An image bundle without patches, sent instead of `bundle` when the device does not hold
    /// the bases of `bundle`'s image patches ([`image`]).
    pub full_bundle: Option<PathBuf>,
}

/// What the user sees as the update proceeds.
pub trait Report {
    fn agent(&mut self, choice: &AgentChoice);
    fn event(&mut self, e: &AgentEvent);
    fn sending(&mut self, total_bytes: u64, paths: usize);
    fn sent(&mut self, bytes: u64);
    fn done_sending(&mut self);
    /// A dry run's plan: what [`Report::sending`] would have announced, path by path.
    fn would_send(&mut self, plan: &[Planned]);
    /// A step of an image bundle's update ([`image`]).
    fn image(&mut self, _step: &ImageStep) {}
}

/// One store path a dry run would send.
pub struct Planned {
    pub path: String,
    /// Bytes on the wire: the bundle's entry, or the delta made for this device.
    pub bytes: u64,
    pub delta: bool,
}

pub struct Outcome {
    /// `None` when the agent was named (`--agent`).
    pub agent: Option<AgentChoice>,
    pub sent_paths: usize,
    pub sent_bytes: u64,
    pub events: Vec<AgentEvent>,
    /// Dry runs only: whether the update would install a generation (`None`: not a dry run).
    pub would_install: Option<bool>,
    /// Image bundles: what was written where ([`image`]).
    pub image: Option<ImageOutcome>,
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// ` receive` and its options, as the remote shell reads them.
fn receive_args(o: &UpdateOptions) -> String {
    let mut cmd = " receive".to_owned();
    if let Some(root) = &o.root {
        cmd.push_str(&format!(" --root {}", shell_quote(root)));
    }
    cmd.push_str(match o.after {
        After::Reboot => "",
        After::Fast => " --fast",
        After::NoReboot => " --no-reboot",
        After::Try => " --try",
    });
    if o.dry_run {
        cmd.push_str(" --dry-run");
    }
    cmd
}

fn remote_command(o: &UpdateOptions) -> String {
    match &o.agent {
        Some(agent) => format!("{}{}", shell_quote(agent), receive_args(o)),
        None => bootstrap::script(&receive_args(o)),
    }
}

fn spawn_ssh(o: &UpdateOptions) -> Result<Child, UpdateError> {
    let mut words = o.ssh_command.split_whitespace();
    let program = words.next().unwrap_or("ssh");
    Command::new(program)
        .args(words)
        .arg(&o.host)
        .arg(remote_command(o))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| UpdateError::Spawn {
            cmd: o.ssh_command.clone(),
            source,
        })
}

struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    host: String,
}

impl Agent {
    fn next_event(&mut self) -> Result<Option<AgentEvent>, UpdateError> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if let Some(rest) = line.strip_prefix("bootstrap-error ") {
            let (kind, message) = rest.trim_end().split_once(' ').unwrap_or((rest, ""));
            return Err(UpdateError::Bootstrap {
                host: self.host.clone(),
                kind: kind.into(),
                message: message.into(),
            });
        }
        AgentEvent::from_line(&line)
            .map(Some)
            .map_err(|source| UpdateError::Garbled { line, source })
    }

    fn failed_before_answer(&mut self, o: &UpdateOptions) -> UpdateError {
        drop(self.stdin.take());
        let status = self.child.wait().map(|s| s.code()).ok().flatten();
        match status {
            Some(127) => UpdateError::NoAgent {
                host: o.host.clone(),
                agent: o.agent.clone().unwrap_or_else(|| "liminix-agent".into()),
            },
            s => UpdateError::Ssh {
                host: o.host.clone(),
                status: s.map_or("killed".into(), |c| c.to_string()),
            },
        }
    }
}

impl Agent {
    /// Gets a fitting agent running on the device ([`bootstrap::converse`]).
    fn bootstrap(
        &mut self,
        o: &UpdateOptions,
        carried: &[Carried],
        report: &mut dyn Report,
    ) -> Result<AgentChoice, UpdateError> {
        let stdin = self.stdin.as_mut().expect("open");
        match bootstrap::converse(&o.host, &mut self.stdout, stdin, carried) {
            Ok(Some(choice)) => {
                report.agent(&choice);
                Ok(choice)
            }
            Ok(None) => Err(self.failed_before_answer(o)),
            Err(e) => {
                // The script exits when its input ends, having written nothing.
                drop(self.stdin.take());
                let _ = self.child.wait();
                Err(e)
            }
        }
    }
}

/// Runs one update; returns what was sent and what the agent said.
pub fn update(o: &UpdateOptions, report: &mut dyn Report) -> Result<Outcome, UpdateError> {
    let (header, entries) = index(&o.bundle)?;
    if image::is_image_bundle(&header.manifest) {
        return image::update(o, &header, report);
    }
    let carried = match &o.agents_dir {
        Some(dir) if o.agent.is_none() => agents::carried(dir)?,
        _ => Vec::new(),
    };
    let mut child = spawn_ssh(o)?;
    let stdin = child.stdin.take();
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut agent = Agent {
        child,
        stdin,
        stdout,
        host: o.host.clone(),
    };
    let mut events = Vec::new();
    let choice = match o.agent {
        Some(_) => None,
        None => Some(agent.bootstrap(o, &carried, report)?),
    };
    let protocol = match agent.next_event()? {
        Some(e @ AgentEvent::Hello { protocol, .. }) => {
            report.event(&e);
            protocol
        }
        Some(other) => {
            return Err(UpdateError::Unexpected {
                expected: "hello",
                got: Box::new(other),
            })
        }
        None => return Err(agent.failed_before_answer(o)),
    };
    let mut header_bytes = Vec::new();
    header.write(&mut header_bytes)?;
    let _ = agent.stdin.as_mut().expect("open").write_all(&header_bytes);
    let (want, bases) = match agent.next_event()? {
        Some(AgentEvent::Want { paths, bases, .. }) => (paths, bases),
        Some(AgentEvent::Error { kind, message }) => {
            return Err(UpdateError::Agent { kind, message })
        }
        Some(other) => {
            return Err(UpdateError::Unexpected {
                expected: "want",
                got: Box::new(other),
            })
        }
        None => return Err(agent.failed_before_answer(o)),
    };
    let plan = plan_entries(o, &entries, &want, &bases, protocol)?;
    if o.dry_run {
        let names = &header.manifest.paths;
        return finish_dry_run(agent, o, choice, planned(&plan, names), report);
    }
    let (sent_paths, sent_bytes) =
        send_entries(&o.bundle, &plan, agent.stdin.take().expect("open"), report)?;
    let mut finished = false;
    while let Some(e) = agent.next_event()? {
        report.event(&e);
        if let AgentEvent::Error { kind, message } = &e {
            let _ = agent.child.wait();
            return Err(UpdateError::Agent {
                kind: kind.clone(),
                message: message.clone(),
            });
        }
        finished |= matches!(
            e,
            AgentEvent::Rebooting | AgentEvent::Trying { .. } | AgentEvent::Unchanged { .. }
        );
        let trying = matches!(e, AgentEvent::Trying { .. });
        events.push(e);
        if trying {
            // The device jumps into the new kernel without closing the connection, which
            // would keep ssh waiting on a peer that is gone: nothing follows this event.
            let _ = agent.child.kill();
            break;
        }
    }
    let status = agent.child.wait()?;
    // After `Rebooting` the connection may drop with the device; anything else must end cleanly.
    if !status.success() && !finished {
        return Err(UpdateError::Ssh {
            host: o.host.clone(),
            status: status.to_string(),
        });
    }
    // A clean exit proves nothing by itself: only the agent's verdict says something changed.
    let verdict = |e: &AgentEvent| {
        matches!(
            e,
            AgentEvent::Installed { .. } | AgentEvent::Unchanged { .. }
        )
    };
    if !events.iter().any(verdict) {
        return Err(UpdateError::NoVerdict {
            host: o.host.clone(),
        });
    }
    Ok(Outcome {
        agent: choice,
        sent_paths,
        sent_bytes,
        events,
        would_install: None,
        image: None,
    })
}

fn planned(plan: &[Outgoing], paths: &[liminix_bundle::PathEntry]) -> Vec<Planned> {
    plan.iter()
        .map(|item| Planned {
            path: paths
                .get(item.index() as usize)
                .map_or_else(String::new, |p| p.path.clone()),
            bytes: item.len(),
            delta: matches!(item, Outgoing::Delta { .. }),
        })
        .collect()
}

/// Reports the plan, ends the session (the agent, given `--dry-run`, reads no further) and
/// hears whether the bundle's generation is already current.
fn finish_dry_run(
    mut agent: Agent,
    o: &UpdateOptions,
    choice: Option<AgentChoice>,
    plan: Vec<Planned>,
    report: &mut dyn Report,
) -> Result<Outcome, UpdateError> {
    report.would_send(&plan);
    drop(agent.stdin.take());
    let mut events = Vec::new();
    while let Some(e) = agent.next_event()? {
        report.event(&e);
        if let AgentEvent::Error { kind, message } = e {
            let _ = agent.child.wait();
            return Err(UpdateError::Agent { kind, message });
        }
        events.push(e);
    }
    let status = agent.child.wait()?;
    if !status.success() {
        return Err(UpdateError::Ssh {
            host: o.host.clone(),
            status: status.to_string(),
        });
    }
    let unchanged = events
        .iter()
        .any(|e| matches!(e, AgentEvent::Unchanged { .. }));
    Ok(Outcome {
        agent: choice,
        sent_paths: 0,
        sent_bytes: 0,
        events,
        would_install: Some(!unchanged),
        image: None,
    })
}

/// zstd level for `LXD1` deltas made at send time.
const DELTA_LEVEL: i32 = 9;
/// zstd level of `LXP1` patch frames: what `zstd -19 --patch-from` uses.
const PATCH_LEVEL: i32 = 19;

/// What goes on the wire for one wanted path.
enum Outgoing<'a> {
    /// The entry's bytes as they are in the bundle file.
    File(&'a EntryLocation),
    /// A delta entry made for this device (header and framed body) for path `index`.
    Delta { index: u32, bytes: Vec<u8> },
}

impl Outgoing<'_> {
    /// The entry's index into the manifest's paths.
    fn index(&self) -> u32 {
        match self {
            Outgoing::File(e) => e.header.index,
            Outgoing::Delta { index, .. } => *index,
        }
    }

    fn len(&self) -> u64 {
        match self {
            Outgoing::File(e) => e.len,
            Outgoing::Delta { bytes, .. } => bytes.len() as u64,
        }
    }
}

/// Chooses, per wanted path, the bundle's entry or a smaller delta against a base the device offered.
fn plan_entries<'a>(
    o: &UpdateOptions,
    entries: &'a [EntryLocation],
    want: &[u32],
    bases: &[DeltaBase],
    protocol: u32,
) -> Result<Vec<Outgoing<'a>>, UpdateError> {
    let want: BTreeSet<u32> = want.iter().copied().collect();
    let wanted = |e: &&EntryLocation| {
        e.header.kind == EntryKind::StorePath && want.contains(&e.header.index)
    };
    let chosen: Vec<&EntryLocation> = entries.iter().filter(wanted).collect();
    // Deltas are computed per device at send time: spread them over the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = chosen.len().div_ceil(threads).max(1);
    let planned: Vec<Result<Outgoing<'a>, UpdateError>> = std::thread::scope(|s| {
        let workers: Vec<_> = chosen
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|e| plan_one(o, e, bases, protocol))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("delta thread"))
            .collect()
    });
    let out = planned.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(out)
}

fn plan_one<'a>(
    o: &UpdateOptions,
    e: &'a EntryLocation,
    bases: &[DeltaBase],
    protocol: u32,
) -> Result<Outgoing<'a>, UpdateError> {
    let base = bases.iter().find(|b| b.index == e.header.index);
    let delta = match (base, &o.store_root) {
        (Some(b), Some(root)) => delta_entry(&o.bundle, e, root, &b.base, protocol)?,
        _ => None,
    };
    Ok(match delta {
        Some(d) if (d.len() as u64) < e.len => Outgoing::Delta {
            index: e.header.index,
            bytes: d,
        },
        _ => Outgoing::File(e),
    })
}

/// The smallest delta entry against `base`, if this machine has that base in its store: the
/// `LXD1` copy/add delta (every agent reads it) or, for agents of protocol 2, the `LXP1` patch.
fn delta_entry(
    bundle: &Path,
    e: &EntryLocation,
    store_root: &Path,
    base: &str,
    protocol: u32,
) -> Result<Option<Vec<u8>>, UpdateError> {
    let Ok(base_path) = StorePath::from_base_name(base) else {
        return Ok(None);
    };
    let host = store_root.join("nix/store").join(base_path.base_name());
    if std::fs::symlink_metadata(&host).is_err() {
        return Ok(None);
    }
    let mut base_nar = Vec::new();
    if nar::dump(&host, &mut base_nar).is_err() {
        return Ok(None);
    }
    let target = read_entry_nar(bundle, e)?;
    let ops = delta::encode(&base_nar, &target);
    let mut best = delta_frame(e.header.index, Encoding::ZstdDelta { base: base.into() })?;
    // The ops are small and mostly literal edits: a fast level costs little ratio here.
    zstd::stream::copy_encode(&ops[..], &mut best, DELTA_LEVEL)?;
    let mut best = best.finish()?;
    if protocol >= 2 {
        let mut patch = delta_frame(e.header.index, Encoding::Patch { base: base.into() })?;
        let bytes = delta_patch::encode(&base_nar, &target, PATCH_LEVEL)
            .map_err(|err| io::Error::other(err.to_string()))?;
        patch.write_all(&bytes)?;
        let patch = patch.finish()?;
        if patch.len() < best.len() {
            best = patch;
        }
    }
    Ok(Some(best))
}

/// An entry header for path `index` in `encoding`, ready for its chunks.
fn delta_frame(index: u32, encoding: Encoding) -> io::Result<ChunkWriter<Vec<u8>>> {
    let mut framed = Vec::new();
    EntryHeader {
        kind: EntryKind::StorePath,
        index,
        encoding,
    }
    .write(&mut framed)?;
    Ok(ChunkWriter::new(framed))
}

/// Decodes one entry of the bundle file back to its NAR.
fn read_entry_nar(bundle: &Path, e: &EntryLocation) -> Result<Vec<u8>, UpdateError> {
    let mut file = BufReader::new(File::open(bundle)?);
    file.seek(SeekFrom::Start(e.offset))?;
    let mut skip = Vec::new();
    e.header.write(&mut skip)?;
    file.seek(SeekFrom::Current(skip.len() as i64))?;
    let mut chunks = ChunkReader::new(&mut file);
    let mut nar = Vec::new();
    match e.header.encoding {
        Encoding::Raw => {
            chunks.read_to_end(&mut nar)?;
        }
        Encoding::Zstd => {
            zstd::stream::copy_decode(&mut chunks, &mut nar)?;
        }
        Encoding::ZstdDelta { .. } | Encoding::Patch { .. } | Encoding::ImagePatch => {
            return Err(UpdateError::DeltaInBundle(e.header.index))
        }
    }
    Ok(nar)
}

/// Sends the planned entries, then the end marker.
fn send_entries(
    bundle: &Path,
    plan: &[Outgoing],
    mut stdin: ChildStdin,
    report: &mut dyn Report,
) -> Result<(usize, u64), UpdateError> {
    let total: u64 = plan.iter().map(Outgoing::len).sum();
    report.sending(total, plan.len());
    let mut file = File::open(bundle)?;
    let mut buf = vec![0u8; 256 << 10];
    let mut sent = 0u64;
    let result = (|| -> io::Result<()> {
        for item in plan {
            match item {
                Outgoing::Delta { bytes: d, .. } => {
                    stdin.write_all(d)?;
                    sent += d.len() as u64;
                    report.sent(d.len() as u64);
                }
                Outgoing::File(e) => {
                    file.seek(SeekFrom::Start(e.offset))?;
                    let mut left = e.len;
                    while left > 0 {
                        let n = buf.len().min(left as usize);
                        file.read_exact(&mut buf[..n])?;
                        stdin.write_all(&buf[..n])?;
                        left -= n as u64;
                        sent += n as u64;
                        report.sent(n as u64);
                    }
                }
            }
        }
        stream::write_end(&mut stdin)?;
        stdin.flush()
    })();
    report.done_sending();
    match result {
        Ok(()) => Ok((plan.len(), sent)),
        // The agent stopped reading; its error event explains why, read by the caller.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok((plan.len(), sent)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
