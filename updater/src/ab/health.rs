//! The health check `mark-good` waits for: named s6-rc services up (as `s6-rc -a list`
//! reports them), and/or a command that exits 0, retried until a deadline.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::slot::HealthConfig;
use super::AbError;

/// Default time a boot has to become healthy.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_secs(1);

/// What one evaluation found missing.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("cannot run s6-rc -a list: {0}")]
    S6Rc(#[source] std::io::Error),
    #[error("services not up: {}", .0.join(", "))]
    ServicesDown(Vec<String>),
    #[error("cannot run health command: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("health command {command:?} failed ({status})")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
    },
}

/// One evaluation: `Ok(())` when healthy, else what is still missing.
pub fn check_once(cfg: &HealthConfig) -> Result<(), HealthError> {
    check_with(cfg, "s6-rc")
}

/// [`check_once`] with the s6-rc program to ask (a path or a name on `PATH`).
pub fn check_with(cfg: &HealthConfig, s6_rc: &str) -> Result<(), HealthError> {
    if !cfg.services.is_empty() {
        let out = Command::new(s6_rc)
            .args(["-a", "list"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(HealthError::S6Rc)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let up: Vec<&str> = text.lines().map(str::trim).collect();
        let down: Vec<String> = cfg
            .services
            .iter()
            .filter(|s| !up.contains(&s.as_str()))
            .cloned()
            .collect();
        if !down.is_empty() {
            return Err(HealthError::ServicesDown(down));
        }
    }
    if let Some(cmd) = &cfg.command {
        let st = Command::new("/bin/sh")
            .args(["-c", cmd])
            .stdin(Stdio::null())
            .status()
            .map_err(HealthError::Spawn)?;
        if !st.success() {
            return Err(HealthError::Failed {
                command: cmd.clone(),
                status: st,
            });
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
        assert!(check_with(&cfg, &s6).is_ok());
        cfg.services.push("ntp".into());
        let e = check_with(&cfg, &s6).unwrap_err();
        assert!(
            matches!(&e, HealthError::ServicesDown(d) if d == &["ntp"]),
            "{e}"
        );
        assert_eq!(e.to_string(), "services not up: ntp");
        cfg.services.pop();
        cfg.command = Some("exit 1".into());
        let e = check_with(&cfg, &s6).unwrap_err();
        assert!(
            matches!(&e, HealthError::Failed { command, status } if command == "exit 1" && status.code() == Some(1)),
            "{e}"
        );
        assert!(e.to_string().contains("health command"), "{e}");
        let e = check_with(&cfg, "/nonexistent/s6-rc").unwrap_err();
        assert!(matches!(e, HealthError::S6Rc(_)), "{e}");
        assert!(e.to_string().contains("cannot run s6-rc"), "{e}");
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
