//! The previous boot's logs as pstore kept them: the one place that reads, moves and
//! removes pstore records, for `boot-log`, `status` and the A/B rollback report.
//!
//! The kernel shows a record per file in `/sys/fs/pstore` (ramoops: `dmesg-ramoops-N`, the
//! kernel log dumped at a panic or oops, starting with a `Panic#C PartP` or `Oops#C PartP`
//! line; `pmsg-ramoops-N`, what was written to `/dev/pmsg0`; `console-ramoops-N`, the
//! console). A record takes room in a small RAM region until it is removed, so at boot
//! [`collect`] moves every record to `/run/log/previous-boot/`, one file per record under its
//! own name, removing each from pstore only once its copy is synced. Liminix's `rc.init`
//! concatenates the records into one file of that name instead; files keep what the name
//! says (which log, which dump) and the border between records, which telling a panic from
//! a kexec needs.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};
use crate::root::DeviceRoot;
use crate::steplog::TAG;

/// Bytes kept of each record's end (its first line is kept too: the dump's reason).
const KEEP: usize = 64 * 1024;
/// Lines of the log shown as the previous boot's last.
const LAST_LINES: usize = 20;

/// One record of the previous boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub text: String,
}

/// How the previous boot ended, as far as pstore tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The kernel panicked (a `Panic` dump).
    Panic,
    /// The kernel oopsed and went on (an `Oops` dump, no panic).
    Oops,
    /// A dump for another reason (emergency restart, or one the kernel did not name).
    Crash,
    /// It ended in a kexec into another kernel.
    Kexec,
    /// No dump: a reboot, but also a power cut or a hardware watchdog, which leave none.
    Clean,
}

/// The `previous_boot` section of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct PreviousBoot {
    pub outcome: Outcome,
    /// The kernel's `Kernel panic - not syncing: …` line.
    pub panic: Option<String>,
    /// The last step the agent logged ([`crate::steplog`]) before the boot ended.
    pub agent_last: Option<String>,
    /// The end of the log that tells most (the newest dump, else the agent's messages).
    pub last_lines: Vec<String>,
    pub records: Vec<String>,
    /// `trial of IMAGE@ID failed: …` when the boot that ended was a trial (`apply --try`)
    /// that crashed before `mark-good` confirmed it.
    pub failed_trial: Option<String>,
}

/// What [`collect`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    /// pstore was not mounted and this run mounted it.
    pub mounted: bool,
    /// Records moved to [`DeviceRoot::previous_boot_log`].
    pub moved: Vec<String>,
    /// Where they are now (device path).
    pub dir: String,
}

/// The previous boot's records: those still in pstore, then those [`collect`] saved.
pub fn records(root: &DeviceRoot) -> Vec<Record> {
    let mut out = read_dir(&root.pstore());
    for r in read_dir(&root.previous_boot_log()) {
        if !out.iter().any(|o| o.name == r.name) {
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Removes records from pstore (which frees its RAM for the next crash). Best effort: a
/// record that stays is reported again, nothing worse.
pub fn drop_from_pstore<'a>(root: &DeviceRoot, names: impl IntoIterator<Item = &'a str>) {
    let dir = root.pstore();
    for n in names {
        let _ = std::fs::remove_file(dir.join(n));
    }
}

/// How the previous boot ended, or `None` when nothing tells: no record in pstore and none
/// saved this boot.
pub fn previous_boot(root: &DeviceRoot) -> Option<PreviousBoot> {
    let recs = records(root);
    let collected = root.previous_boot_log().is_dir();
    (collected || !recs.is_empty()).then(|| classify(&recs))
}

/// The human form, for `status` and `boot-log`.
pub fn render(b: &PreviousBoot) -> String {
    let outcome = serde_json::to_value(b.outcome).unwrap_or_default();
    let mut out = format!(
        "previous boot: {} ({} pstore record(s))\n",
        outcome.as_str().unwrap_or("?"),
        b.records.len()
    );
    if let Some(t) = &b.failed_trial {
        out.push_str(&format!("  {t}\n"));
    }
    if let Some(p) = &b.panic {
        out.push_str(&format!("  {p}\n"));
    }
    if let Some(a) = &b.agent_last {
        out.push_str(&format!("  last agent step: {a}\n"));
    }
    for l in &b.last_lines {
        out.push_str(&format!("  | {l}\n"));
    }
    out
}

fn read_dir(dir: &Path) -> Vec<Record> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let b = std::fs::read(e.path()).ok()?;
            Some(Record {
                name: e.file_name().to_string_lossy().into_owned(),
                text: keep(&b),
            })
        })
        .collect()
}

/// The record's first line and its last [`KEEP`] bytes.
fn keep(b: &[u8]) -> String {
    if b.len() <= KEEP {
        return String::from_utf8_lossy(b).into_owned();
    }
    let first = b.split(|&c| c == b'\n').next().unwrap_or_default();
    let tail = &b[b.len() - KEEP..];
    format!(
        "{}\n[…]\n{}",
        String::from_utf8_lossy(first),
        String::from_utf8_lossy(tail)
    )
}

/// A dump's reason, count and part from its first line (`Panic#2 Part1`).
fn dump_header(r: &Record) -> Option<(&str, u32, u32)> {
    let first = r.text.lines().next()?;
    let (why, rest) = first.split_once('#')?;
    let (count, part) = rest.split_once(" Part")?;
    Some((why, count.parse().ok()?, part.trim().parse().ok()?))
}

/// Tells the outcome from the records (see [`Outcome`]).
pub fn classify(recs: &[Record]) -> PreviousBoot {
    let dumps: Vec<(&Record, &str, u32, u32)> = recs
        .iter()
        .filter(|r| r.name.starts_with("dmesg-"))
        .filter_map(|r| dump_header(r).map(|(w, c, p)| (r, w, c, p)))
        .collect();
    // The newest dump's first part holds the end of the log.
    let newest = dumps
        .iter()
        .filter(|d| d.3 == 1)
        .max_by_key(|d| d.2)
        .or_else(|| dumps.iter().max_by_key(|d| d.2));
    let messages = recs.iter().find(|r| r.name.starts_with("pmsg-"));
    let console = recs.iter().find(|r| r.name.starts_with("console-"));
    let told = newest.map(|d| d.0).or(messages).or(console);
    let agent_last = [messages, newest.map(|d| d.0), console]
        .into_iter()
        .flatten()
        .find_map(|r| last_agent_line(&r.text));
    let kexec_said = |r: Option<&Record>| {
        r.is_some_and(|r| r.text.contains("Starting new kernel") || r.text.contains("kexec"))
    };
    let outcome = match newest.map(|d| d.1) {
        _ if dumps.iter().any(|d| d.1 == "Panic") => Outcome::Panic,
        _ if dumps.iter().any(|d| d.1 == "Oops") => Outcome::Oops,
        Some("Shutdown") if kexec_said(newest.map(|d| d.0)) => Outcome::Kexec,
        Some(_) => Outcome::Crash,
        None if agent_last
            .as_deref()
            .is_some_and(|l| l.starts_with("kexec"))
            || kexec_said(console) =>
        {
            Outcome::Kexec
        }
        None => Outcome::Clean,
    };
    let panic = newest.and_then(|d| panic_line(&d.0.text));
    PreviousBoot {
        failed_trial: failed_trial(outcome, agent_last.as_deref(), panic.as_deref()),
        outcome,
        panic,
        agent_last,
        last_lines: told.map(|r| last_lines(&r.text)).unwrap_or_default(),
        records: recs.iter().map(|r| r.name.clone()).collect(),
    }
}

/// A kernel log line without its `<level>` and `[time]` prefixes.
fn bare(line: &str) -> &str {
    let line = match line.strip_prefix('<') {
        Some(rest) => rest.split_once('>').map_or(line, |(_, l)| l),
        None => line,
    };
    match line.trim_start().strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or(line, |(_, l)| l),
        None => line,
    }
}

/// A trial (crate::trial) logs `trial of IMAGE@ID: …` steps; one that crashed before its
/// `confirmed` step failed.
fn failed_trial(outcome: Outcome, agent_last: Option<&str>, panic: Option<&str>) -> Option<String> {
    let crashed = matches!(outcome, Outcome::Panic | Outcome::Oops | Outcome::Crash);
    let rest = agent_last?.strip_prefix("trial of ")?;
    let (label, step) = rest.split_once(": ")?;
    if !crashed || step.starts_with("confirmed") {
        return None;
    }
    let outcome = serde_json::to_value(outcome).unwrap_or_default();
    let why = panic
        .map(|p| {
            p.trim_start_matches("Kernel panic - not syncing: ")
                .to_owned()
        })
        .unwrap_or_else(|| format!("last step: {step}"));
    Some(format!(
        "trial of {label} failed: {} ({why})",
        outcome.as_str().unwrap_or("crash")
    ))
}

fn last_agent_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .find_map(|l| Some(l.split_once(TAG)?.1.trim_end().to_string()))
}

fn panic_line(text: &str) -> Option<String> {
    text.lines()
        .map(bare)
        .find(|l| l.starts_with("Kernel panic - not syncing"))
        .map(|l| l.trim_end().to_string())
}

fn last_lines(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(bare)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let from = lines.len().saturating_sub(LAST_LINES);
    lines[from..].iter().map(|l| l.to_string()).collect()
}

/// Mounts pstore if the kernel has it and it is not mounted, then moves every record to
/// [`DeviceRoot::previous_boot_log`] (see the module docs).
pub fn collect(root: &DeviceRoot) -> Result<Collected> {
    let mounted = mount_if_needed(root)?;
    let src = root.pstore();
    let dest = root.previous_boot_log();
    let mut names: Vec<String> = match std::fs::read_dir(&src) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(AgentError::io("listing the pstore records in", &src)(e)),
    };
    names.sort();
    if !names.is_empty() {
        std::fs::create_dir_all(&dest).map_err(AgentError::io("creating", &dest))?;
    }
    for name in &names {
        save(&src.join(name), &dest, name)?;
        let rec = src.join(name);
        std::fs::remove_file(&rec).map_err(AgentError::io("removing the pstore record", &rec))?;
    }
    Ok(Collected {
        mounted,
        moved: names,
        dir: root
            .device_path(&dest)
            .unwrap_or_else(|| dest.display().to_string()),
    })
}

/// Copies `from` to `dir/name` through a temporary file, synced, renamed, the directory synced.
fn save(from: &Path, dir: &Path, name: &str) -> Result<()> {
    let data = std::fs::read(from).map_err(AgentError::io("reading the pstore record", from))?;
    let to = dir.join(name);
    let tmp: PathBuf = dir.join(format!(".{name}.tmp"));
    let io = AgentError::io("saving the pstore record to", &to);
    let mut f = std::fs::File::create(&tmp).map_err(AgentError::io("creating", &tmp))?;
    f.write_all(&data)
        .map_err(AgentError::io("writing", &tmp))?;
    f.sync_all().map_err(AgentError::io("syncing", &tmp))?;
    std::fs::rename(&tmp, &to).map_err(io)?;
    let d = std::fs::File::open(dir).map_err(AgentError::io("opening", dir))?;
    d.sync_all().map_err(AgentError::io("syncing", dir))
}

/// Mounts pstore on [`DeviceRoot::pstore`] when the kernel lists the filesystem and nothing
/// is mounted there; whether it did.
fn mount_if_needed(root: &DeviceRoot) -> Result<bool> {
    let fs = std::fs::read_to_string(root.join("/proc/filesystems")).unwrap_or_default();
    if !fs
        .lines()
        .any(|l| l.split_whitespace().last() == Some("pstore"))
    {
        return Ok(false);
    }
    let at = root.pstore();
    let table = liminix_flash::mounts::mount_table(root.dir())
        .map_err(AgentError::io("reading the mount table below", root.dir()))?;
    let here = at.to_string_lossy();
    if table.iter().any(|m| m.mount_point == here) {
        return Ok(false);
    }
    use rustix::mount::{mount, MountFlags};
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mount("pstore", &at, "pstore", flags, None)
        .map_err(|e| AgentError::io("mounting pstore on", &at)(e.into()))?;
    Ok(true)
}

#[cfg(test)]
#[path = "pstore_tests.rs"]
mod tests;
