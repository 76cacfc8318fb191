//! Running QEMU and watching its serial console.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{VmError, VmOutput};

/// Everything `run` needs to start and supervise one guest.
pub struct Launch<'a> {
    pub args: Vec<String>,
    pub end_marker: &'a str,
    pub kill_marker: Option<&'a str>,
    pub timeout: Duration,
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

/// Status printed after the end marker, if the marker appeared.
fn parse_status(serial: &str, marker: &str) -> Option<i32> {
    let rest = &serial[serial.rfind(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn has_line_with(serial: &str, needle: &str) -> bool {
    serial.lines().any(|l| l.contains(needle))
}

/// Starts QEMU and waits for it to exit, time out, or print the kill marker.
pub fn run(l: &Launch) -> Result<VmOutput, VmError> {
    let start = Instant::now();
    let mut child: Child = Command::new("qemu-system-x86_64")
        .args(&l.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| VmError::Setup(format!("qemu-system-x86_64: {e}")))?;
    let rx = spawn_reader(child.stdout.take().expect("piped stdout"));
    let err_rx = spawn_reader(child.stderr.take().expect("piped stderr"));
    let mut raw = Vec::new();
    let (mut killed, mut timed_out) = (false, false);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(chunk) => raw.extend_from_slice(&chunk),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let text = String::from_utf8_lossy(&raw);
        if let Some(m) = l.kill_marker {
            // Only whole lines count: the marker must have been fully printed.
            if text.lines().count() > 0 && has_line_with(&text[..text.rfind('\n').unwrap_or(0)], m)
            {
                killed = true;
            }
        }
        if !killed && start.elapsed() > l.timeout {
            timed_out = true;
        }
        if killed || timed_out {
            // SIGKILL: the guest gets no chance to flush anything, like a power cut.
            let _ = child.kill();
            break;
        }
    }
    let exit = child
        .wait()
        .map_err(|e| VmError::Setup(format!("wait for qemu: {e}")))?;
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
        raw.extend_from_slice(&chunk);
    }
    let stderr: Vec<u8> = err_rx.try_iter().flatten().collect();
    let serial = String::from_utf8_lossy(&raw).replace('\r', "");
    let status = parse_status(&serial, l.end_marker);
    let out = VmOutput {
        serial,
        status,
        killed_at_marker: killed,
        timed_out,
        elapsed: start.elapsed(),
        qemu_stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    if !killed && !timed_out && !exit.success() && status.is_none() {
        return Err(VmError::Qemu(out));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_last_marker() {
        let s = "x\nEND-1 3\nEND-1 0\n";
        assert_eq!(parse_status(s, "END-1"), Some(0));
        assert_eq!(parse_status("nothing", "END-1"), None);
    }
}
