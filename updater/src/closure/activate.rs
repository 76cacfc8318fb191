//! What happens after install: an orderly reboot, or `--fast` live activation through s6-rc.
//!
//! `--fast` compares the database the running s6-rc was started from (where `/run/s6-rc/compiled`
//! resolves) with the new one (where `/etc/s6-rc/compiled` resolves after `activate /`), and always
//! hands `s6-rc-update` the resolved store path of the new database. That last point is what makes
//! a second and third `--fast` in a row compare the right databases: given the `/etc` symlink,
//! s6-rc-update would record the link and the next comparison would be the new database with itself.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::error::{ActivationError, AgentError, Result, UsageError};
use crate::root::DeviceRoot;
use crate::staging::write_atomic;

/// Parses an s6-rc database `hashes` file: `NAME STOREPATH` or `NAME force-restart` per line.
pub fn read_hashes(db: &Path) -> Result<BTreeMap<String, String>> {
    let path = db.join("hashes");
    let text = fs::read_to_string(&path).map_err(AgentError::io("reading", &path))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next().unwrap_or("").to_owned()))
        })
        .collect())
}

/// Services of the old database to restart: changed, removed, or marked force-restart.
pub fn services_to_restart(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<String> {
    old.iter()
        .filter(|(name, hash)| {
            *hash == "force-restart"
                || new
                    .get(*name)
                    .is_none_or(|h| h != *hash || h == "force-restart")
        })
        .map(|(name, _)| name.clone())
        .collect()
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|source| ActivationError::Spawn {
        command: shown.clone(),
        source,
    })?;
    if !status.success() {
        return Err(ActivationError::Failed {
            command: shown,
            status,
        }
        .into());
    }
    Ok(())
}

/// Live-activates the installed generation `toplevel` on the running system (root must be `/`).
pub fn fast(root: &DeviceRoot, toplevel: &str) -> Result<Vec<String>> {
    if !root.is_live_system() {
        return Err(UsageError::FastWithRoot.into());
    }
    let old_db = fs::canonicalize(root.live_s6_db()).map_err(AgentError::io(
        "resolving the running s6-rc database",
        root.live_s6_db(),
    ))?;
    run(Command::new(root.join(&format!("{toplevel}/bin/activate"))).arg("/"))?;
    let new_db = fs::canonicalize(root.etc_s6_db()).map_err(AgentError::io(
        "resolving the new s6-rc database",
        root.etc_s6_db(),
    ))?;
    let restarts = services_to_restart(&read_hashes(&old_db)?, &read_hashes(&new_db)?);
    fs::create_dir_all(root.run_dir()).map_err(AgentError::io("creating", root.run_dir()))?;
    let list = root.run_dir().join("restarts");
    let text: String = restarts.iter().map(|s| format!("{s} restart\n")).collect();
    write_atomic(&list, text.as_bytes())?;
    run(Command::new("s6-rc-update")
        .arg("-f")
        .arg(&list)
        .arg(&new_db))?;
    run(Command::new("s6-rc").args(["-u", "-p", "change", "default"]))?;
    Ok(restarts)
}

/// Flushes everything and asks init for an orderly reboot.
pub fn reboot() -> Result<()> {
    rustix::fs::sync();
    run(&mut Command::new("reboot"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn restart_set() {
        let old = map(&[
            ("a", "/nix/store/1-a"),
            ("b", "/nix/store/1-b"),
            ("c", "force-restart"),
            ("gone", "/nix/store/1-g"),
        ]);
        let new = map(&[
            ("a", "/nix/store/1-a"),
            ("b", "/nix/store/2-b"),
            ("c", "force-restart"),
            ("added", "/nix/store/1-n"),
        ]);
        assert_eq!(services_to_restart(&old, &new), vec!["b", "c", "gone"]);
        assert!(services_to_restart(&new, &new).contains(&"c".to_string()));
        assert_eq!(services_to_restart(&new, &new).len(), 1);
    }
}
