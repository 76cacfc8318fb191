//! The A/B strategy through the real Ansible: the collection's rolling-update playbook
//! (`liminix_strategy: ab`) updates one router guest over ssh. The guest is the U-Boot A/B
//! bed of ab_uboot_qemu (Debian's qemu_arm U-Boot sourcing `ab-boot.txt`, the armmp kernel,
//! the static ARMv7 agent), kept running by one QEMU process whose resets go back to U-Boot;
//! its slots run Debian's armhf dropbear behind QEMU's hostfwd, with one host key baked into
//! every slot image and checked strictly.
//!
//! Boots (attempt budget 1): A; then B after the update, which confirms; then the A that
//! panics; then B again after U-Boot's fallback. What each slot holds is checked on the guest
//! (`status --json`, the slot partition's sha256), not taken from Ansible's word.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use liminix_tests::device::pack_binary;
use liminix_tests::fleet::{self, Row};
use liminix_tests::lab::text;
use liminix_vm::arm::ssh::{Guest, Health, SshAbBed, BOARD, BOARD_TOML};

const ATTEMPTS: u8 = 1;
const BOOT: Duration = Duration::from_secs(600);

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The build host: a signing key, the board file, and bundles made by `liminix-pack`.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let o = run(Command::new(pack_binary())
            .args(["keygen", "--secret"])
            .arg(dir.path().join("build.sec"))
            .arg("--public")
            .arg(dir.path().join("build.pub")));
        assert!(o.status.success(), "keygen: {}", text(&o));
        std::fs::write(dir.path().join("board.toml"), BOARD_TOML).unwrap();
        fleet::link_collection(dir.path());
        Host { dir }
    }

    fn public(&self) -> PathBuf {
        self.dir.path().join("build.pub")
    }

    /// `liminix-pack bundle` of one slot image for the bed's board.
    fn bundle(&self, slot_image: &Path, name: &str, epoch: u64) -> PathBuf {
        let out = self.dir.path().join(format!("{name}.bundle"));
        let o = run(Command::new(pack_binary())
            .arg("bundle")
            .arg("--key")
            .arg(self.dir.path().join("build.sec"))
            .args(["--board", BOARD, "--epoch", &epoch.to_string()])
            .arg("--board-file")
            .arg(self.dir.path().join("board.toml"))
            .arg("--image")
            .arg(format!("kernel={}", slot_image.display()))
            .arg("--out")
            .arg(&out)
            .env("SOURCE_DATE_EPOCH", "1700000000"));
        assert!(o.status.success(), "liminix-pack bundle: {}", text(&o));
        out
    }

    /// `ansible-playbook rolling-update.yml` against the guest; the output and the summary.
    fn playbook(&self, guest: &Guest, bundle: &Path, args: &[&str]) -> (Output, Vec<Row>) {
        let host = serde_json::json!({
            "ansible_host": "127.0.0.1",
            "ansible_port": guest.port(),
            "ansible_user": "root",
            "ansible_ssh_private_key_file": guest.client_key(),
            "ansible_ssh_common_args": guest.ssh_options().join(" "),
        });
        let vars = serde_json::json!({"liminix_strategy": "ab", "liminix_bundle": bundle});
        fleet::rolling_update_of_one(self.dir.path(), host, &vars, args)
    }
}

/// `liminix-agent status --json` on the guest.
fn status(guest: &Guest) -> serde_json::Value {
    let (code, out) = guest.ssh("liminix-agent status --json").unwrap();
    assert_eq!(code, Some(0), "status: {out}\n{}", guest.serial());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status JSON: {e}: {out}"))
}

fn slot_sha(guest: &Guest, dev: &str) -> String {
    let (code, out) = guest.ssh(&format!("sha256sum {dev}")).unwrap();
    assert_eq!(code, Some(0), "sha256sum {dev}: {out}");
    out.split_whitespace().next().unwrap_or_default().to_owned()
}

fn ab(st: &serde_json::Value, key: &str) -> String {
    st["ab"][key].as_str().unwrap_or_default().to_owned()
}

fn only_row(rows: &[Row], out: &Output) -> Row {
    assert_eq!(rows.len(), 1, "one summary row: {}", text(out));
    rows[0].clone()
}

#[test]
fn ansible_ab_update_confirms_and_an_unconfirmed_slot_falls_back() {
    let host = Host::new();
    let bed = SshAbBed::new(ATTEMPTS, &host.public()).unwrap_or_else(|e| panic!("bed: {e}"));
    let good = bed.slot_image(Health::Good, "b-2").unwrap();
    let bad = bed.slot_image(Health::Panics, "a-bad").unwrap();
    let good_bundle = host.bundle(&good.path, "good", 2);
    let bad_bundle = host.bundle(&bad.path, "bad", 3);

    let mut guest = bed.start().unwrap();
    guest
        .wait_ready("AB-GUEST serving", 0, BOOT)
        .unwrap_or_else(|e| panic!("first boot: {e}"));
    let st = status(&guest);
    assert_eq!(
        (ab(&st, "booted"), ab(&st, "trial")),
        ("a".into(), "none".into())
    );
    let b_before = slot_sha(&guest, "/dev/vda3");

    // Check mode: the agent's `apply --dry-run` reads the bundle; nothing changes.
    let (o, rows) = host.playbook(&guest, &good_bundle, &["--check"]);
    assert!(o.status.success(), "check mode: {}", text(&o));
    let row = only_row(&rows, &o);
    assert_eq!(row.result, "would update", "{row:?}");
    let size = std::fs::metadata(&good_bundle).unwrap().len();
    assert_eq!(row.would_send_bytes, Some(size), "{row:?}");
    let st = status(&guest);
    assert_eq!(
        (ab(&st, "booted"), ab(&st, "trial")),
        ("a".into(), "none".into())
    );
    assert_eq!(
        slot_sha(&guest, "/dev/vda3"),
        b_before,
        "check mode wrote slot B"
    );

    // Scenario 1: A -> B; U-Boot tries B, B's health check passes and it confirms.
    let (o, rows) = host.playbook(&guest, &good_bundle, &[]);
    assert!(o.status.success(), "update: {}", text(&o));
    let row = only_row(&rows, &o);
    assert_eq!(row.result, "updated, slot b", "{row:?}");
    assert_eq!(row.sent_bytes, size, "{row:?}");
    let st = status(&guest);
    assert_eq!(ab(&st, "booted"), "b", "{st}");
    assert!(
        ["confirmed", "none"].contains(&ab(&st, "trial").as_str()),
        "{st}"
    );
    assert_eq!(slot_sha(&guest, "/dev/vda3"), good.sha256);
    let con = guest.serial();
    for sign in [
        "liminix-ab: booting slot b (committed a, trying b, left 0",
        "AB-GUEST version=b-2",
        "AB-GUEST confirmed",
    ] {
        assert!(con.contains(sign), "console lacks {sign:?}:\n{con}");
    }

    // Scenario 2: B installs an A that panics before confirming; U-Boot goes back to B.
    let skip = guest.serial().len();
    let (o, rows) = host.playbook(&guest, &bad_bundle, &[]);
    assert!(
        !o.status.success(),
        "a slot that never confirms: {}",
        text(&o)
    );
    let row = only_row(&rows, &o);
    assert_eq!(row.result, "failed, back on slot b", "{row:?}");
    let msg = row.message.clone().unwrap_or_default();
    assert!(msg.contains("went back to slot b"), "{row:?}");
    // B's mark-good at boot was the first to read the fallback: it recorded the rollback
    // (`rolled-back` once), so `status` now shows no trial and the record.
    let st = status(&guest);
    assert_eq!(ab(&st, "booted"), "b", "{st}");
    assert_eq!(ab(&st, "trial"), "none", "{st}");
    assert_eq!(st["ab"]["last_rollback"]["failed"], "a", "{st}");
    assert_eq!(st["ab"]["last_rollback"]["running"], "b", "{st}");
    assert_eq!(st["ab"]["state"]["committed"], "b", "{st}");
    assert_eq!(slot_sha(&guest, "/dev/vda2"), bad.sha256);
    let con = guest.serial()[skip..].to_owned();
    for sign in [
        "AB-GUEST never confirms: panic",
        "liminix-ab: booting slot b (committed b, trying none, left 0, failed a)",
    ] {
        assert!(con.contains(sign), "console lacks {sign:?}:\n{con}");
    }
    guest.power_off(Duration::from_secs(60)).unwrap();
}
