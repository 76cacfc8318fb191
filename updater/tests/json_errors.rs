//! `liminix-agent --json`: a failure is one `error` event on stdout, the same object `receive`
//! sends over the wire, with the kind that decides the exit code; the sentence still goes to
//! stderr for the person watching.

use std::process::{Command, Output};

use liminix_bundle::wire::{exit, AgentEvent, ErrorKind};

fn agent(root: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liminix-agent"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run liminix-agent")
}

/// The one error event on stdout, and the exit code.
fn json_error(out: &Output) -> (ErrorKind, String, i32) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line on stdout: {stdout:?}");
    match serde_json::from_str::<AgentEvent>(lines[0]).expect("an agent event") {
        AgentEvent::Error { kind, message } => (kind, message, out.status.code().unwrap_or(-1)),
        other => panic!("not an error event: {other:?}"),
    }
}

#[test]
fn a_bundle_that_is_not_one_is_a_corrupt_kind_with_exit_3() {
    let root = tempfile::tempdir().unwrap();
    let bundle = root.path().join("garbage.bundle");
    std::fs::write(&bundle, b"this is not a Liminix bundle, just some bytes").unwrap();
    let out = agent(root.path(), &["--json", "apply", bundle.to_str().unwrap()]);
    let (kind, message, code) = json_error(&out);
    assert_eq!(kind, ErrorKind::Corrupt);
    assert_eq!(code, exit::VERIFY);
    assert_eq!(code, kind.exit_code());
    assert!(message.contains("not a Liminix bundle"), "{message}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("liminix-agent: error: "), "{stderr}");
}

#[test]
fn mark_good_without_slots_is_a_state_kind_with_exit_1() {
    let root = tempfile::tempdir().unwrap();
    let out = agent(root.path(), &["--json", "mark-good", "--no-check"]);
    let (kind, message, code) = json_error(&out);
    assert_eq!(kind, ErrorKind::State);
    assert_eq!(code, exit::FAILURE);
    assert!(message.contains("no A/B slots"), "{message}");
}

#[test]
fn without_json_stdout_stays_empty() {
    let root = tempfile::tempdir().unwrap();
    let out = agent(root.path(), &["rollback", "7"]);
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(exit::FAILURE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no generation 7"));
}
