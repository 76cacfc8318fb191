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
    check_with(cfg, "s6-rc")
}

/// [`check_once`] with the s6-rc program to ask (a path or a name on `PATH`).
pub fn check_with(cfg: &HealthConfig, s6_rc: &str) -> Result<(), String> {
    if !cfg.services.is_empty() {
        let out = Command::new(s6_rc)
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
                return Err(AbError::Unhealthy {
                    why,
                    waited_secs: start.elapsed().as_secs(),
                })
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `s6-rc -a list` that lists the services in its script.
    fn fake_s6_rc(dir: &std::path::Path, up: &[&str]) -> String {
        let p = dir.join("s6-rc");
        let body = format!(
            "#!/bin/sh\n[ \"$1 $2\" = \"-a list\" ] || exit 100\nprintf '%s\\n' {}\n",
            up.join(" ")
        );
        std::fs::write(&p, body).unwrap();
        std::process::Command::new("chmod")
            .arg("755")
            .arg(&p)
            .status()
            .unwrap();
        p.display().to_string()
    }

    #[test]
    fn services_and_command_both_count() {
        let d = tempfile::tempdir().unwrap();
        let s6 = fake_s6_rc(d.path(), &["dnsmasq", "hostapd", "wan"]);
        let mut cfg = HealthConfig {
            services: vec!["wan".into(), "hostapd".into()],
            command: Some("true".into()),
            deadline_secs: None,
        };
        assert_eq!(check_with(&cfg, &s6), Ok(()));
        cfg.services.push("ntp".into());
        assert_eq!(
            check_with(&cfg, &s6),
            Err("services not up: ntp".to_string())
        );
        cfg.services.pop();
        cfg.command = Some("exit 1".into());
        assert!(check_with(&cfg, &s6)
            .unwrap_err()
            .contains("health command"));
        assert!(check_with(&cfg, "/nonexistent/s6-rc")
            .unwrap_err()
            .contains("cannot run s6-rc"));
    }

    #[test]
    fn wait_gives_up_at_the_deadline() {
        let cfg = HealthConfig {
            services: vec![],
            command: Some("false".into()),
            deadline_secs: None,
        };
        assert!(matches!(
            wait_healthy(&cfg, Duration::ZERO),
            Err(AbError::Unhealthy { .. })
        ));
    }
}
