//! What the agent binary prints for a damaged bundle: the kind (exit code and `--json` event) and
//! the exact sentence on stderr, with no decoder internals and no cause repeated.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use liminix_bundle::stream::{Encoding, Header};
use liminix_bundle::wire::{AgentEvent, ErrorKind};
use liminix_bundle::SecretKey;
use liminix_tests::crafted::{self, TOP};
use liminix_tests::device::{agent_binary, pack_binary};
use sha2::{Digest, Sha256};

/// A device root trusting one fresh key; the secret half signs the test bundles.
struct Bench {
    dir: tempfile::TempDir,
    key: SecretKey,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let etc = dir.path().join("etc/liminix");
        fs::create_dir_all(etc.join("trusted-keys")).unwrap();
        fs::write(etc.join("board"), "qemu\n").unwrap();
        fs::write(
            etc.join("trusted-keys/lab.pub"),
            key.public().to_file_text(),
        )
        .unwrap();
        fs::create_dir_all(dir.path().join("nix/store")).unwrap();
        fs::create_dir_all(dir.path().join("persist")).unwrap();
        Bench { dir, key }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `liminix-pack verify` of `bundle` with the trusted key.
    fn pack_verify(&self, bundle: &[u8]) -> Output {
        let file = self.root().join("checked.bundle");
        fs::write(&file, bundle).unwrap();
        let o = Command::new(pack_binary())
            .arg("verify")
            .arg(&file)
            .arg("--trust")
            .arg(self.root().join("etc/liminix/trusted-keys/lab.pub"))
            .output()
            .unwrap();
        fs::remove_file(&file).unwrap();
        o
    }

    /// `liminix-agent --root ROOT --json receive --no-reboot` with `bundle` on stdin.
    fn receive(&self, bundle: &[u8]) -> Output {
        let mut child = Command::new(agent_binary())
            .arg("--root")
            .arg(self.root())
            .args(["--json", "receive", "--no-reboot"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The agent may stop reading early (that is what a refusal is).
        let _ = stdin.write_all(bundle);
        drop(stdin);
        child.wait_with_output().unwrap()
    }
}

/// The NAR of a minimal toplevel: `bin/activate`, `bin/init`, `etc/nix-store-paths`.
fn toplevel_nar() -> Vec<u8> {
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("top");
    fs::create_dir_all(top.join("bin")).unwrap();
    fs::create_dir_all(top.join("etc")).unwrap();
    for name in ["bin/activate", "bin/init"] {
        fs::write(top.join(name), "#!/bin/sh\n").unwrap();
        fs::set_permissions(top.join(name), fs::Permissions::from_mode(0o555)).unwrap();
    }
    fs::write(top.join("etc/nix-store-paths"), format!("{TOP}\n")).unwrap();
    let mut nar = Vec::new();
    liminix_bundle::nar::dump(&top, &mut nar).unwrap();
    nar
}

/// A bundle signed by `key` whose one entry carries `payload` with `encoding`.
fn bundle(key: &SecretKey, nar: &[u8], encoding: Encoding, payload: &[u8]) -> Vec<u8> {
    let m = crafted::one_path(Sha256::digest(nar).into(), nar.len() as u64, 8);
    let bytes = m.to_bytes();
    crafted::signed(key, m, bytes, &[(0, encoding, payload)])
}

fn good_bundle(key: &SecretKey) -> Vec<u8> {
    let nar = toplevel_nar();
    bundle(
        key,
        &nar,
        Encoding::Zstd,
        &zstd::encode_all(&nar[..], 3).unwrap(),
    )
}

/// The `error` event the agent printed on stdout.
fn error_event(o: &Output) -> (ErrorKind, String) {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| match AgentEvent::from_line(l) {
            Ok(AgentEvent::Error { kind, message }) => Some((kind, message)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no error event in {}", String::from_utf8_lossy(&o.stdout)))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code, kind and the exact stderr; the event's message is the same sentence on one line.
fn assert_refusal(o: &Output, kind: ErrorKind, expected_stderr: &str) {
    assert_eq!(o.status.code(), Some(kind.exit_code()), "{}", stderr(o));
    let (got_kind, message) = error_event(o);
    assert_eq!(got_kind, kind, "{message}");
    assert_eq!(stderr(o), expected_stderr);
    let one_line = expected_stderr
        .trim_start_matches("liminix-agent: error: ")
        .trim_end()
        .replace("\n  caused by: ", ": ");
    assert_eq!(message, one_line);
    for internal in ["Kind(", "Error(", "ReadError", "os error"] {
        assert!(!expected_stderr.contains(internal), "{expected_stderr}");
    }
}

fn nothing_installed(root: &Path) {
    assert!(!root.join(&TOP[1..]).exists(), "the store path was kept");
    assert!(!root.join("persist/generations/1").exists());
}

#[test]
fn an_altered_signature_says_it_does_not_verify_and_that_the_key_is_trusted() {
    let bench = Bench::new();
    let mut bytes = good_bundle(&bench.key);
    let good = Header::read(&mut &bytes[..]).unwrap();
    let sig = &good.signatures[0];
    let at = bytes
        .windows(sig.signature.len())
        .position(|w| w == sig.signature.as_bytes())
        .unwrap();
    // One hex digit of the signature, changed to another hex digit.
    bytes[at + 10] = if bytes[at + 10] == b'0' { b'1' } else { b'0' };
    let o = bench.receive(&bytes);
    let key = &sig.key[..16];
    assert_refusal(
        &o,
        ErrorKind::Untrusted,
        &format!(
            "liminix-agent: error: the bundle's signature by trusted key {key} does not verify: \
             the manifest or the signature was altered after signing\n"
        ),
    );
    nothing_installed(bench.root());
    // The packer's `verify` tells the same cause.
    let o = bench.pack_verify(&bytes);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "liminix-pack: error: the signature by the trusted key {} does not verify: the \
             manifest or the signature was altered after signing\n",
            sig.key
        )
    );
}

#[test]
fn a_truncated_bundle_says_it_is_truncated() {
    let bench = Bench::new();
    let bytes = good_bundle(&bench.key);
    let o = bench.receive(&bytes[..bytes.len() - 40]);
    assert_refusal(
        &o,
        ErrorKind::Corrupt,
        "liminix-agent: error: the bundle is truncated (it ends inside an entry's data)\n",
    );
    nothing_installed(bench.root());
    let o = bench.pack_verify(&bytes[..bytes.len() - 40]);
    assert_eq!(
        stderr(&o),
        "liminix-pack: error: the bundle is truncated (it ends inside an entry's data)\n"
    );
}

#[test]
fn a_payload_that_is_not_zstd_says_so() {
    let bench = Bench::new();
    let nar = toplevel_nar();
    let o = bench.receive(&bundle(&bench.key, &nar, Encoding::Zstd, &nar));
    assert_refusal(
        &o,
        ErrorKind::Payload,
        &format!(
            "liminix-agent: error: store path {TOP} failed verification\n  \
             caused by: the payload is not zstd data\n"
        ),
    );
    nothing_installed(bench.root());
}

#[test]
fn bytes_after_the_end_marker_are_refused() {
    let bench = Bench::new();
    let mut bytes = good_bundle(&bench.key);
    bytes.extend_from_slice(b"extra");
    let o = bench.receive(&bytes);
    assert_refusal(
        &o,
        ErrorKind::Corrupt,
        "liminix-agent: error: the bundle has data after its end marker\n",
    );
    let o = bench.pack_verify(&bytes);
    assert_eq!(
        stderr(&o),
        "liminix-pack: error: the bundle has data after its end marker\n"
    );
    assert!(!bench.root().join("persist/generations/1").exists());
    // The same bundle without the extra bytes installs.
    let o = bench.receive(&good_bundle(&bench.key));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(bench.root().join("persist/generations/1").is_dir());
}

#[test]
fn a_garbled_trusted_key_file_is_reported_and_the_other_keys_still_work() {
    let bench = Bench::new();
    let keys = bench.root().join("etc/liminix/trusted-keys");
    fs::write(keys.join("0-garbled.pub"), "liminix-ed25519-public 12ab\n").unwrap();
    fs::write(keys.join("1-binary.pub"), [0xff, 0xfe, 0x00]).unwrap();
    // A garbled file next to an untrusted signer adds no trust.
    let stranger = SecretKey::generate();
    let o = bench.receive(&good_bundle(&stranger));
    assert_eq!(error_event(&o).0, ErrorKind::Untrusted, "{}", stderr(&o));
    assert!(stderr(&o).contains("(1 key(s))"), "{}", stderr(&o));
    let o = bench.receive(&good_bundle(&bench.key));
    assert!(o.status.success(), "{}", stderr(&o));
    let garbled = keys.join("0-garbled.pub");
    let binary = keys.join("1-binary.pub");
    assert_eq!(
        stderr(&o),
        format!(
            "liminix-agent: warning: {} is not a liminix public key file (expected one line \
             `liminix-ed25519-public <64 hex digits>`); the file is ignored\n\
             liminix-agent: warning: cannot read key file {}: stream did not contain valid \
             UTF-8; the file is ignored\n",
            garbled.display(),
            binary.display()
        )
    );
    assert!(bench.root().join("persist/generations/1").is_dir());
}

impl Bench {
    /// `liminix-agent --root ROOT ARGS`.
    fn agent(&self, args: &[&str]) -> Output {
        Command::new(agent_binary())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .unwrap()
    }
}

#[test]
fn a_damaged_generation_is_shown_replaced_by_an_update_and_not_rolled_back_to() {
    let bench = Bench::new();
    assert!(bench.receive(&good_bundle(&bench.key)).status.success());
    let info = bench.root().join("persist/generations/1/info.json");
    fs::write(&info, "{\"number\":").unwrap();
    let problem = format!(
        "{} is not a valid generation record: EOF while parsing a value at line 1 column 10",
        info.display()
    );
    let o = bench.agent(&["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let human = String::from_utf8_lossy(&o.stdout);
    assert!(
        human.contains(&format!("    1  DAMAGED: {problem}  [current]\n")),
        "{human}"
    );
    // The same bundle again: the damaged current record does not stop it.
    let o = bench.receive(&good_bundle(&bench.key));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bench.agent(&["--json", "status"]);
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["current"], 2);
    assert_eq!(status["generations"][0]["number"], 2);
    assert_eq!(
        status["damaged"],
        serde_json::json!([{"number": 1, "problem": problem}])
    );
    let o = bench.agent(&["--json", "rollback"]);
    assert_eq!(o.status.code(), Some(ErrorKind::State.exit_code()));
    let (kind, message) = error_event(&o);
    assert_eq!(kind, ErrorKind::State);
    assert_eq!(
        message,
        format!(
            "no generation to roll back to: the previous one, generation 1, is damaged \
             ({problem}) and no other is whole"
        )
    );
    assert_eq!(stderr(&o), format!("liminix-agent: error: {message}\n"));
    // gc collects it: it is neither current nor a rollback target.
    let o = bench.agent(&["--json", "gc", "--keep", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["removed_generations"], serde_json::json!([1]));
    assert!(!bench.root().join("persist/generations/1").exists());
}
