//! `update.sh --install`: the first install onto a board whose vendor system lives in a btrfs
//! `@` (the Turris Omnia), from its recovery stick. Three steps over ssh, each one the agent
//! checks before it writes: `btrfs-install prepare` (snapshot of `@`, empty new root), the
//! ordinary transfer into the new root (`--root`, no reboot), `btrfs-install finish` (boot
//! files, switch, boot loader). A run cut anywhere is finished by running it again.

use std::process::{Command, Stdio};

use liminix_bundle::wire::AgentEvent;

use super::{shell_quote, update, After, Outcome, Report, UpdateError, UpdateOptions};

/// What the install did.
pub struct Installed {
    /// The read-only snapshot of the vendor's `@`, the way back.
    pub snapshot: String,
    /// The transfer (`None` when an earlier run had completed it).
    pub transfer: Option<Outcome>,
    /// The agent's `finish` report, as JSON.
    pub finish: serde_json::Value,
}

/// Runs `AGENT ARGS --json` on the device and returns its one JSON line, or its error.
fn agent_json(o: &UpdateOptions, args: &str) -> Result<serde_json::Value, UpdateError> {
    let agent = o.agent.as_deref().unwrap_or("liminix-agent");
    let mut words = o.ssh_command.split_whitespace();
    let program = words.next().unwrap_or("ssh");
    let out = Command::new(program)
        .args(words)
        .arg(&o.host)
        .arg(format!("{} {args} --json", shell_quote(agent)))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| UpdateError::Spawn {
            cmd: o.ssh_command.clone(),
            source,
        })?;
    let line = String::from_utf8_lossy(&out.stdout);
    let line = line.lines().last().unwrap_or("").to_owned();
    if let Ok(AgentEvent::Error { kind, message }) = AgentEvent::from_line(&line) {
        return Err(UpdateError::Agent { kind, message });
    }
    if !out.status.success() {
        return Err(UpdateError::Ssh {
            host: o.host.clone(),
            status: out.status.code().map_or("killed".into(), |c| c.to_string()),
        });
    }
    serde_json::from_str(&line).map_err(|source| UpdateError::Garbled { line, source })
}

/// Prepares, sends the generation into the new root, finishes.
/// `boot_targets`: what U-Boot tries afterwards (`None`: the agent's default, the eMMC first).
pub fn install(
    o: &UpdateOptions,
    reason: &str,
    boot_targets: Option<&str>,
    report: &mut dyn Report,
) -> Result<Installed, UpdateError> {
    let prepared = agent_json(
        o,
        &format!("btrfs-install prepare --reason {}", shell_quote(reason)),
    )?;
    let field = |v: &serde_json::Value, name: &'static str| -> Result<String, UpdateError> {
        v[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| UpdateError::Garbled {
                line: v.to_string(),
                source: serde::de::Error::missing_field(name),
            })
    };
    let snapshot = field(&prepared, "snapshot")?;
    let transfer = match field(&prepared, "next")?.as_str() {
        "receive" => {
            let into = UpdateOptions {
                root: Some(field(&prepared, "staging")?),
                after: After::NoReboot,
                ..o.clone()
            };
            Some(update(&into, report)?)
        }
        _ => None,
    };
    let finish = match boot_targets {
        Some(t) => format!("btrfs-install finish --boot-targets {}", shell_quote(t)),
        None => "btrfs-install finish".to_owned(),
    };
    let finish = agent_json(o, &finish)?;
    Ok(Installed {
        snapshot,
        transfer,
        finish,
    })
}
