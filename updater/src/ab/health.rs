//! The health check `mark-good` waits for: named s6-rc services up (as `s6-rc -a list`
//! reports them), and/or a command that exits 0, retried until a deadline.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::slot::HealthConfig;
use super::AbError;

/// Default time a boot has to become healthy.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_secs(1);

/// One evaluation: `Ok(())` when healthy, else what is still missing.
pub fn check_once(cfg: &HealthConfig) -> Result<(), String> {
    if !cfg.services.is_empty() {
        let out = Command::new("s6-rc")
            .args(["-a", "list"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run s6-rc -a list: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let up: Vec<&str> = text.lines().map(str::trim).collect();
        let down: Vec<&str> = cfg
            .services
            .iter()
            .map(String::as_str)
            .filter(|s| !up.contains(s))
            .collect();
        if !down.is_empty() {
            return Err(format!("services not up: {}", down.join(", ")));
        }
    }
    if let Some(cmd) = &cfg.command {
        let st = Command::new("/bin/sh")
            .args(["-c", cmd])
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run health command: {e}"))?;
        if !st.success() {
            return Err(format!("health command {cmd:?} failed ({st})"));
        }
    }
    Ok(())
}

/// Checks until healthy or `deadline` passed (at least one check is always made).
pub fn wait_healthy(cfg: &HealthConfig, deadline: Duration) -> Result<(), AbError> {
    let start = Instant::now();
    loop {
        match check_once(cfg) {
            Ok(()) => return Ok(()),
            Err(why) if start.elapsed() + POLL > deadline => {
                return Err(AbError::Unhealthy(format!(
                    "{why} (gave up after {} s)",
                    start.elapsed().as_secs()
                )))
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}
