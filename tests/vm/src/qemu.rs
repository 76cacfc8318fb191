//! Running one QEMU process and watching its serial console on stdout.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::VmError;

/// When to stop QEMU early (SIGKILL: the guest gets no chance to flush anything, like a
/// power cut).
#[derive(Debug, Clone)]
pub struct Stop {
    /// Text on the console that triggers the stop.
    pub marker: String,
    /// Only a finished line counts (the marker's line ended with a newline).
    pub whole_line: bool,
    /// How long after the marker the power goes.
    pub delay: Duration,
}

impl Stop {
    /// Kill as soon as a finished console line contains `marker`.
    pub fn at_line(marker: &str) -> Self {
        Stop {
            marker: marker.to_string(),
            whole_line: true,
            delay: Duration::ZERO,
        }
    }

    /// Kill `delay` after `marker` appears anywhere on the console.
    pub fn after(marker: &str, delay: Duration) -> Self {
        Stop {
            marker: marker.to_string(),
            whole_line: false,
            delay,
        }
    }

    fn seen_in(&self, serial: &str) -> bool {
        let text = if self.whole_line {
            &serial[..serial.rfind('\n').unwrap_or(0)]
        } else {
            serial
        };
        text.lines().any(|l| l.contains(&self.marker))
    }
}

/// One QEMU run: which binary (with the Debian package that ships it), its arguments, when
/// to stop it.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: &'static str,
    pub package: &'static str,
    pub args: Vec<String>,
    pub stop: Option<Stop>,
    pub timeout: Duration,
}

/// What one QEMU run produced.
#[derive(Debug, Clone)]
pub struct Run {
    /// The serial console, CRs removed.
    pub serial: String,
    pub stderr: String,
    /// QEMU was killed because of [`Launch::stop`].
    pub stopped: bool,
    /// QEMU was killed at the timeout.
    pub timed_out: bool,
    /// QEMU's exit status (a signal after a kill).
    pub exit: ExitStatus,
    /// Wall time from QEMU start to its exit.
    pub elapsed: Duration,
}

fn spawn_reader(mut child_out: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = child_out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

impl Launch {
    /// Starts QEMU and waits for it to exit, time out, or reach the stop marker.
    pub fn run(&self) -> Result<Run, VmError> {
        let start = Instant::now();
        let mut child = Command::new(self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => VmError::MissingTool {
                    tool: self.program.to_string(),
                    package: self.package,
                },
                _ => VmError::Command {
                    command: self.program.to_string(),
                    detail: e.to_string(),
                },
            })?;
        let rx = spawn_reader(child.stdout.take().expect("piped stdout"));
        let err_rx = spawn_reader(child.stderr.take().expect("piped stderr"));
        let mut raw = Vec::new();
        let (mut stopped, mut timed_out) = (false, false);
        let mut stop_at: Option<Instant> = None;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(chunk) => raw.extend_from_slice(&chunk),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let (Some(stop), None) = (&self.stop, stop_at) {
                if stop.seen_in(&String::from_utf8_lossy(&raw)) {
                    stop_at = Some(Instant::now() + stop.delay);
                }
            }
            stopped = stop_at.is_some_and(|t| Instant::now() >= t);
            timed_out = !stopped && start.elapsed() > self.timeout;
            if stopped || timed_out {
                let _ = child.kill();
                break;
            }
        }
        let exit = child.wait().map_err(|e| VmError::Command {
            command: format!("wait for {}", self.program),
            detail: e.to_string(),
        })?;
        while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            raw.extend_from_slice(&chunk);
        }
        let stderr: Vec<u8> = err_rx.try_iter().flatten().collect();
        Ok(Run {
            serial: String::from_utf8_lossy(&raw).replace('\r', ""),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            stopped,
            timed_out,
            exit,
            elapsed: start.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_line_markers_wait_for_the_newline() {
        let s = Stop::at_line("CUT");
        assert!(!s.seen_in("boot\nCUT here"));
        assert!(s.seen_in("boot\nCUT here\n"));
        assert!(Stop::after("CUT", Duration::ZERO).seen_in("boot\nCUT here"));
    }
}
