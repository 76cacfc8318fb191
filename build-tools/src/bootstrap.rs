//! Getting an agent to run on the device before the update, over the update's own ssh
//! connection: a small POSIX shell script (the ssh command) reports the device's CPU, the free
//! space of `/run` and the version of any agent already there, then waits for one line from the
//! client: use an agent that is there, or receive one (size line, then the bytes), check it and
//! run it. The client decides; nothing is written on the device before it has. The rule is in
//! [`decide`]; `docs/agents.md` describes the whole sequence.

use std::fs::File;
use std::io::{self, BufRead, Write};
use std::process::ChildStdin;

use liminix_boards::Cpu;
use liminix_bundle::wire::PROTOCOL;
use serde::Deserialize;

use crate::agents::{device_cpu, Carried, Elf};
use crate::client::UpdateError;

/// Where a received agent is kept: `/run` is a tmpfs, so it is gone after the next boot.
pub const RUN_DIR: &str = "/run/liminix";

/// First line of the probe's answer; a later incompatible probe would change the number.
const GREETING: &str = "liminix-bootstrap 1";
/// Tools the receiving half of the script needs.
const TOOLS: &str = "head wc sha256sum cut chmod mv mkdir tr";

/// The ssh command: probe, wait for the client's decision, then run `AGENT receive_args`.
/// It reads `/etc/profile` first, as a login shell would: an ssh command runs in a shell that
/// does not, and Liminix puts the packages of `defaultProfile.packages` on the `PATH` there.
pub fn script(receive_args: &str) -> String {
    format!(
        r#"[ -r /etc/profile ] && . /etc/profile >/dev/null 2>&1
dir={RUN_DIR}
have=$dir/liminix-agent
part=$dir/liminix-agent.partial
exe=/bin/busybox
[ -r "$exe" ] || exe=/bin/sh
echo '{GREETING}'
echo "machine $(uname -m)"
echo "elf $( {{ od -An -tx1 -N52 "$exe" 2>/dev/null || hexdump -v -n52 -e '1/1 "%02x"' "$exe" 2>/dev/null; }} | tr -d ' \n')"
where=/run
[ -d "$dir" ] && where=$dir
echo "run-free-blocks $(stat -f -c '%a %S' "$where" 2>/dev/null)"
echo "run-free-kib $(df -Pk "$where" 2>/dev/null | awk 'NR==2 {{print $4}}')"
echo "missing-tools $(for t in {TOOLS}; do command -v "$t" >/dev/null 2>&1 || printf '%s ' "$t"; done)"
report() {{
  [ -n "$2" ] || return 0
  echo "agent-path $1 $2"
  echo "agent-version $1 $("$2" version --json 2>/dev/null | head -n 1)"
}}
report 1 "$(command -v liminix-agent 2>/dev/null)"
[ -x "$have" ] && report 2 "$have"
echo probe-end
read -r verb size sum || exit 0
fail() {{ echo "bootstrap-error $1 $2"; rm -f "$part"; exit 1; }}
case "$verb" in
use)
  if [ "$size" = 1 ]; then exec "$(command -v liminix-agent)"{receive_args}; fi
  exec "$have"{receive_args} ;;
send)
  mkdir -p "$dir" || fail io "cannot create $dir"
  rm -f "$part"
  head -c "$size" > "$part" || fail io "cannot write $part"
  got=$(wc -c < "$part" | tr -d ' ')
  [ "$got" = "$size" ] || fail incomplete "received $got of $size bytes into $part"
  got=$(sha256sum "$part" | cut -d ' ' -f 1)
  [ "$got" = "$sum" ] || fail verify "sha256 of $part is $got, expected $sum"
  chmod 755 "$part" && mv -f "$part" "$have" || fail io "cannot install $have"
  exec "$have"{receive_args} ;;
esac
exit 0
"#
    )
}

/// What an agent answers to `version --json`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AgentVersion {
    pub agent_version: String,
    pub protocol: u32,
}

/// An agent found on the device: `slot` 1 is the one on the PATH, 2 the one in [`RUN_DIR`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub slot: u8,
    pub path: String,
    /// `None`: it gave no version (an agent older than the handshake, or not one that runs here).
    pub version: Option<AgentVersion>,
}

/// What the probe reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub machine: String,
    pub elf: Option<Elf>,
    pub run_free: Option<u64>,
    pub missing_tools: Vec<String>,
    pub agents: Vec<Found>,
}

impl Probe {
    pub fn cpu(&self) -> Option<Cpu> {
        device_cpu(&self.machine, self.elf.as_ref())
    }

    /// For messages: `uname -m mips, /bin/busybox 32-bit little-endian, e_machine 8, …`.
    pub fn describe_cpu(&self) -> String {
        match &self.elf {
            Some(e) => format!("uname -m {}, busybox {}", self.machine, e.describe()),
            None => format!("uname -m {}, no readable ELF header", self.machine),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the device's bootstrap probe said {line:?}: {why}")]
pub struct ProbeError {
    pub line: String,
    pub why: &'static str,
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Reads the probe's lines up to `probe-end`; `Ok(None)` when the connection ended first.
pub fn read_probe(r: &mut dyn BufRead) -> Result<Option<Probe>, ProbeError> {
    let mut probe = Probe {
        machine: String::new(),
        elf: None,
        run_free: None,
        missing_tools: Vec::new(),
        agents: Vec::new(),
    };
    let mut greeted = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches('\n');
        if !greeted {
            if line != GREETING {
                return Err(ProbeError {
                    line: line.into(),
                    why: "not the bootstrap probe (is the login shell a POSIX sh?)",
                });
            }
            greeted = true;
            continue;
        }
        if line == "probe-end" {
            return Ok(Some(probe));
        }
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "machine" => probe.machine = value.trim().into(),
            "elf" => probe.elf = hex_bytes(value.trim()).and_then(|b| Elf::parse(&b)),
            // statfs through `stat -f` needs no /proc; `df` is the fallback.
            "run-free-blocks" => {
                if let Some(free) = free_blocks(value) {
                    probe.run_free = Some(free);
                }
            }
            "run-free-kib" if probe.run_free.is_none() => {
                probe.run_free = value.trim().parse::<u64>().ok().map(|k| k * 1024)
            }
            "run-free-kib" => {}
            "missing-tools" => {
                probe.missing_tools = value.split_whitespace().map(String::from).collect()
            }
            "agent-path" | "agent-version" => agent_line(&mut probe, key, value, line)?,
            _ => {
                return Err(ProbeError {
                    line: line.into(),
                    why: "unknown line",
                })
            }
        }
    }
}

/// `AVAILABLE BLOCK_SIZE` as `stat -f -c '%a %S'` prints them, in bytes.
fn free_blocks(value: &str) -> Option<u64> {
    let mut it = value.split_whitespace().map(|n| n.parse::<u64>().ok());
    let (blocks, size) = (it.next()??, it.next()??);
    blocks.checked_mul(size)
}

fn agent_line(probe: &mut Probe, key: &str, value: &str, line: &str) -> Result<(), ProbeError> {
    let bad = |why| ProbeError {
        line: line.into(),
        why,
    };
    let (slot, rest) = value.split_once(' ').unwrap_or((value, ""));
    let slot: u8 = match slot {
        "1" => 1,
        "2" => 2,
        _ => return Err(bad("agent slot is not 1 or 2")),
    };
    if key == "agent-path" {
        probe.agents.push(Found {
            slot,
            path: rest.into(),
            version: None,
        });
        return Ok(());
    }
    let found = probe
        .agents
        .iter_mut()
        .find(|f| f.slot == slot)
        .ok_or_else(|| bad("version of an agent with no path"))?;
    found.version = serde_json::from_str(rest.trim()).ok();
    Ok(())
}

/// `major.minor.patch` of a version string; a pre-release or build suffix is ignored.
fn numbers(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|n| n.parse::<u64>().ok());
    let parsed = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(parsed)
}

/// The version of the agents this client carries (one workspace version for all crates).
pub const OURS: &str = env!("CARGO_PKG_VERSION");

/// How a device's agent compares with the carried one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Same protocol, same version.
    Same,
    /// Same protocol, newer: used, and the user is told.
    Newer,
    /// Older, another protocol, or no version at all: ours is sent.
    Unfit,
}

/// The version rule: an agent speaking our wire protocol that is not older than ours is used;
/// anything else is replaced (for this update only) by the carried one.
pub fn judge(v: Option<&AgentVersion>) -> Verdict {
    let Some(v) = v else {
        return Verdict::Unfit;
    };
    if v.protocol != PROTOCOL {
        return Verdict::Unfit;
    }
    match (numbers(&v.agent_version), numbers(OURS)) {
        (Some(theirs), Some(ours)) if theirs > ours => Verdict::Newer,
        (Some(theirs), Some(ours)) if theirs == ours => Verdict::Same,
        _ => Verdict::Unfit,
    }
}

/// What the client tells the probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    Use { found: &'a Found, verdict: Verdict },
    Send(&'a Carried),
}

/// Why no agent can run the update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No agent on the device will do, and none is carried at all.
    NothingCarried,
    /// None of the carried agents is for the device's CPU.
    NoAgentForCpu { device: String, carried: Vec<Cpu> },
    /// The agent does not fit into `/run`.
    NoRoom { need: u64, free: u64 },
    /// The device cannot say how much room `/run` has, or lacks a tool the receiving needs.
    CannotReceive(String),
}

/// The device's first agent that passes [`judge`]; else the carried agent for its CPU, if it
/// fits and the device has the tools to receive it.
pub fn decide<'a>(probe: &'a Probe, carried: &'a [Carried]) -> Result<Decision<'a>, Refusal> {
    for found in &probe.agents {
        match judge(found.version.as_ref()) {
            Verdict::Unfit => {}
            verdict => return Ok(Decision::Use { found, verdict }),
        }
    }
    if carried.is_empty() {
        return Err(Refusal::NothingCarried);
    }
    let cpu = probe.cpu();
    let Some(agent) = carried.iter().find(|c| Some(c.cpu) == cpu) else {
        return Err(Refusal::NoAgentForCpu {
            device: probe.describe_cpu(),
            carried: carried.iter().map(|c| c.cpu).collect(),
        });
    };
    if !probe.missing_tools.is_empty() {
        return Err(Refusal::CannotReceive(format!(
            "it lacks {}",
            probe.missing_tools.join(", ")
        )));
    }
    let Some(free) = probe.run_free else {
        return Err(Refusal::CannotReceive(
            "neither `stat -f` nor `df` gave the free space of /run".into(),
        ));
    };
    if free < agent.size {
        return Err(Refusal::NoRoom {
            need: agent.size,
            free,
        });
    }
    Ok(Decision::Send(agent))
}

/// Which agent runs the update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentChoice {
    /// One that was on the device; `newer` when it is newer than the carried ones.
    Device {
        path: String,
        version: String,
        newer: bool,
    },
    /// The carried agent for the device's CPU, sent into [`RUN_DIR`].
    Sent { cpu: Cpu, bytes: u64 },
}

/// The client's half of the conversation: reads the probe, decides, answers. On `Ok(Some)` the
/// chosen agent is starting `receive`; `Ok(None)`: the connection ended before the probe did.
/// On a refusal nothing has been written to the device.
pub fn converse(
    host: &str,
    stdout: &mut dyn BufRead,
    stdin: &mut ChildStdin,
    carried: &[Carried],
) -> Result<Option<AgentChoice>, UpdateError> {
    let Some(probe) = read_probe(stdout)? else {
        return Ok(None);
    };
    let choice = match decide(&probe, carried).map_err(|r| refused(host, r))? {
        Decision::Use { found, verdict } => {
            writeln!(stdin, "use {}", found.slot).or_else(ignore_broken_pipe)?;
            AgentChoice::Device {
                path: found.path.clone(),
                version: found
                    .version
                    .as_ref()
                    .map_or_else(String::new, |v| v.agent_version.clone()),
                newer: verdict == Verdict::Newer,
            }
        }
        Decision::Send(agent) => {
            send_agent(stdin, agent)?;
            AgentChoice::Sent {
                cpu: agent.cpu,
                bytes: agent.size,
            }
        }
    };
    stdin.flush().or_else(ignore_broken_pipe)?;
    Ok(Some(choice))
}

fn refused(host: &str, r: Refusal) -> UpdateError {
    let host = host.to_owned();
    match r {
        Refusal::NothingCarried => UpdateError::NoUsableAgent { host },
        Refusal::NoAgentForCpu { device, carried } => UpdateError::UnsupportedCpu {
            host,
            device,
            carried: carried
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", "),
        },
        Refusal::NoRoom { need, free } => UpdateError::NoRoom { host, need, free },
        Refusal::CannotReceive(why) => UpdateError::CannotReceive { host, why },
    }
}

/// The script stopped reading: the line it printed says why, and the caller reads it next.
fn ignore_broken_pipe(e: io::Error) -> io::Result<()> {
    match e.kind() {
        io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e),
    }
}

/// The `send SIZE SHA256` line, then the agent's bytes; nothing more until the device answers.
fn send_agent(stdin: &mut ChildStdin, agent: &Carried) -> Result<(), UpdateError> {
    writeln!(stdin, "send {} {}", agent.size, agent.sha256).or_else(ignore_broken_pipe)?;
    let mut file = File::open(&agent.path)?;
    io::copy(&mut file, stdin)
        .map(drop)
        .or_else(ignore_broken_pipe)?;
    Ok(())
}

#[cfg(test)]
mod tests;
