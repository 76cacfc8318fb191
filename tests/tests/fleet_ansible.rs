//! Fleet updates with the real Ansible (`ansible-core`, from scripts/setup.sh) and the collection
//! in `ansible/`: 20 device chroots, each behind its own real sshd on a loopback port, updated by
//! the rolling-update playbook through `update.sh`. What each device holds is checked on the
//! device itself (the agent's `status`, store paths hashed against the build host's copies,
//! snapshots of its files), not taken from Ansible's word.

use std::fs;
use std::path::Path;
use std::time::Instant;

use liminix_bundle::nar;
use liminix_tests::closure::{Closure, ClosureSpec};
use liminix_tests::device::{Device, SshServer};
use liminix_tests::fleet::{self, Fleet, Run};
use liminix_tests::lab::{text, Lab, Pack};
use liminix_tests::tree::{snapshot, Snapshot};

const DEVICES: usize = 20;
const STAGING: &str = "nix/store/.liminix-staging";

fn vars(updater: &Path, serial: &[u32], max_fail: u32) -> serde_json::Value {
    serde_json::json!({
        "liminix_updater": updater,
        "liminix_serial": serial,
        "liminix_max_fail_percentage": max_fail,
        "liminix_activate": "reboot",
    })
}

/// Every path of `c` is on the device and hashes as the build host's copy does.
fn assert_closure(fleet: &Fleet, device: &Device, c: &Closure, host: &str) {
    for p in &c.paths {
        let rel = p.trim_start_matches('/');
        let want = nar::hash_path(&fleet.lab.store_root().join(rel)).unwrap();
        let got = nar::hash_path(&device.path(rel)).unwrap_or_else(|e| panic!("{host}: {p}: {e}"));
        assert_eq!(want, got, "{host}: {p} differs from the build host's");
    }
}

fn assert_on(fleet: &Fleet, host: &str, generation: u64, c: &Closure) {
    let (_, device, sshd) = member(fleet, host);
    let st = fleet::status(sshd);
    assert_eq!(st["current"], generation, "{host}: {st}");
    let top = st["generations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["number"] == generation)
        .map(|g| g["toplevel"].clone());
    assert_eq!(top, Some(c.toplevel.clone().into()), "{host}: {st}");
    assert_closure(fleet, device, c, host);
}

fn member<'a>(
    fleet: &'a Fleet,
    host: &str,
) -> (String, &'a Device, &'a liminix_tests::device::SshServer) {
    fleet
        .members()
        .into_iter()
        .find(|(n, _, _)| n == host)
        .unwrap_or_else(|| panic!("no {host}"))
}

/// Each device's `/persist` and store, for "nothing changed".
fn snapshots(fleet: &Fleet) -> Vec<(String, Snapshot, Snapshot)> {
    fleet
        .members()
        .into_iter()
        .map(|(n, d, _)| (n, snapshot(&d.path("persist")), snapshot(&d.path("nix"))))
        .collect()
}

fn assert_unchanged(fleet: &Fleet, before: &[(String, Snapshot, Snapshot)], what: &str) {
    for ((name, persist, nix), (_, p2, n2)) in before.iter().zip(snapshots(fleet)) {
        persist.assert_same(&p2, &format!("{what}: {name} /persist"));
        nix.assert_same(&n2, &format!("{what}: {name} /nix"));
    }
}

/// The collection's summary table, as Ansible printed it.
fn show_table(run: &Run, what: &str) {
    let out = String::from_utf8_lossy(&run.output.stdout);
    let table = out.find("LIMINIX FLEET SUMMARY").map_or("", |i| &out[i..]);
    eprintln!("{what} ({:.1}s):\n{table}", run.seconds);
}

fn assert_ran(run: &Run, ok: bool, what: &str) {
    assert_eq!(
        run.output.status.success(),
        ok,
        "{what}: {}",
        text(&run.output)
    );
    assert_eq!(run.summary.len(), DEVICES, "{what}: {}", text(&run.output));
}

/// Fault: `/nix/store` on a tmpfs with 512 KiB free, less than any update needs.
fn fill_disk(device: &Device) {
    let o = std::process::Command::new("du")
        .arg("-sk")
        .arg(device.path("nix/store"))
        .output()
        .unwrap();
    let kib: u64 = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .expect("du -sk");
    device.mount_tmpfs_store((kib + 512) * 1024).unwrap();
}

/// Fault: the agent is SIGKILLed while it receives store paths. Its input (through a fifo, fed
/// from the session's stdin kept as fd 3) stalls after `cap` bytes, past the manifest and inside
/// the entries; the kill comes once it has begun restoring paths into staging, and the session
/// ends with the agent's status, as it would had the agent been started directly.
fn killer(cap: u64) -> String {
    format!(
        r#"#!/bin/sh
[ "$1" = receive ] || exec /bin/liminix-agent.real "$@"
exec 3<&0
feed=/tmp/liminix-feed.$$
mkfifo $feed
/bin/liminix-agent.real "$@" < $feed &
pid=$!
( dd bs=1 count={cap} 2>/dev/null; exec sleep 30 ) <&3 > $feed &
feeder=$!
i=0
while [ -z "$(ls -A /nix/store/.liminix-staging 2>/dev/null)" ] && [ $i -lt 200 ]; do
  sleep 0.05; i=$((i+1))
done
sleep 0.2
kill -9 $pid $feeder
wait $pid
rc=$?
rm -f $feed
exit $rc
"#
    )
}

/// Fault: `reboot` fails, so the agent reports `activation` after installing.
const FAILING_REBOOT: &str = "#!/bin/sh\necho 'reboot: not now' >&2\nexit 1\n";

fn kill_agent_mid_transfer(device: &Device, cap: u64) {
    fs::rename(
        device.path("bin/liminix-agent"),
        device.path("bin/liminix-agent.real"),
    )
    .unwrap();
    fs::write(device.path("bin/liminix-agent"), killer(cap)).unwrap();
    let o = device
        .run_in_chroot("chmod 755 /bin/liminix-agent")
        .unwrap();
    assert!(o.status.success());
}

fn restore_agent(device: &Device) {
    fs::rename(
        device.path("bin/liminix-agent.real"),
        device.path("bin/liminix-agent"),
    )
    .unwrap();
}

#[test]
fn a_fleet_of_twenty_rolls_out_stops_at_the_threshold_and_reruns_change_nothing() {
    let t = Instant::now();
    let fleet = Fleet::new(DEVICES);
    let lab = &fleet.lab;
    let gen1 = lab.generate(&ClosureSpec::small(1));
    let gen2 = lab.derive(&gen1, &["firewall", "ntp"], 0.5, 7);
    let up1 = lab.updater(&gen1, &Pack::default());
    let up2 = lab.updater(&gen2, &Pack::default());
    eprintln!(
        "fleet of {DEVICES} and two updaters: {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // A canary, then two waves: every router installs generation 1.
    let run = fleet.playbook(
        "rolling-update.yml",
        &vars(&up1, &[1, 9, 10], 10),
        &["-f", "10"],
    );
    eprintln!("first install: {:.1}s", run.seconds);
    assert_ran(&run, true, "first install");
    for (host, _, _) in fleet.members() {
        let row = run.row(&host);
        assert_eq!(
            (row.result.as_str(), row.to),
            ("updated", Some(1)),
            "{row:?}"
        );
        assert!(row.sent_bytes > 0, "{row:?}");
        assert_on(&fleet, &host, 1, &gen1);
    }

    // The same again: only the have/want exchange, nothing sent, nothing written.
    let before = snapshots(&fleet);
    let run = fleet.playbook(
        "rolling-update.yml",
        &vars(&up1, &[1, 9, 10], 10),
        &["-f", "10"],
    );
    eprintln!("second run: {:.1}s", run.seconds);
    assert_ran(&run, true, "second run");
    for row in &run.summary {
        assert_eq!(
            (row.result.as_str(), row.sent_bytes),
            ("unchanged", 0),
            "{row:?}"
        );
        assert_eq!((row.from, row.to), (Some(1), Some(1)), "{row:?}");
    }
    assert!(
        String::from_utf8_lossy(&run.output.stdout).contains("changed=0"),
        "{}",
        text(&run.output)
    );
    assert_unchanged(&fleet, &before, "second run");

    // Check mode: what generation 2 would send, and nothing changes.
    let run = fleet.playbook(
        "rolling-update.yml",
        &vars(&up2, &[20], 10),
        &["--check", "-f", "10"],
    );
    assert_ran(&run, true, "check mode");
    let predicted = run.row("r00").would_send_bytes.expect("would_send");
    for row in &run.summary {
        assert_eq!(row.result, "would update", "{row:?}");
        assert_eq!(
            (row.would_send_bytes, row.sent_bytes),
            (Some(predicted), 0),
            "{row:?}"
        );
    }
    assert_unchanged(&fleet, &before, "check mode");

    // Faults: a full store (r03, wave 2); a reboot that fails after the install (r06), another
    // board (r08) and a killed agent (r11, wave 3).
    fill_disk(member(&fleet, "r03").1);
    fs::write(member(&fleet, "r06").1.path("bin/reboot"), FAILING_REBOOT).unwrap();
    fs::write(
        member(&fleet, "r08").1.path("etc/liminix/board"),
        "gl-ar750\n",
    )
    .unwrap();
    // Half way through what check mode said the entries take, after the bundle's header.
    let (_, entries) = liminix_build_tools::pack::index(&Lab::bundle_of(&up2)).unwrap();
    let header = entries.iter().map(|e| e.offset).min().unwrap();
    kill_agent_mid_transfer(member(&fleet, "r11").1, header + predicted / 2);
    // Waves of 1, 5, 7, 7; at most 20% may fail: wave 2 (1 of 5) goes on, wave 3 (3 of 7) stops.
    let run = fleet.playbook(
        "rolling-update.yml",
        &vars(&up2, &[1, 5, 7, 7], 20),
        &["-f", "10"],
    );
    show_table(&run, "rolling update with faults");
    assert_ran(&run, false, "rolling update with faults");
    let on_previous = "failed, on previous generation";
    let failed = [
        ("r03", on_previous, "no_space"),
        ("r06", "failed, rolled back", "activation"),
        ("r08", on_previous, "wrong_board"),
        ("r11", on_previous, ""),
    ];
    for (host, device, _) in fleet.members() {
        let row = run.row(&host);
        let n: usize = host[1..].parse().unwrap();
        if let Some((_, result, kind)) = failed.iter().find(|(h, _, _)| *h == host) {
            assert!(row.result.starts_with(result), "{row:?}");
            assert!(row.result.contains(kind), "{row:?}");
            assert_eq!((row.from, row.to), (Some(1), Some(1)), "{row:?}");
            assert_on(&fleet, &host, 1, &gen1);
        } else if n <= 12 {
            assert_eq!(
                (row.result.as_str(), row.from, row.to),
                ("updated", Some(1), Some(2)),
                "{row:?}"
            );
            assert_eq!(
                row.sent_bytes, predicted,
                "{host}: check mode predicted {predicted}"
            );
            assert_on(&fleet, &host, 2, &gen2);
            assert!(!device.path(STAGING).exists(), "{host}: staging left");
        } else {
            assert_eq!(row.result, "not attempted", "{row:?}");
            assert_on(&fleet, &host, 1, &gen1);
        }
    }
    // The kill came mid-transfer: the agent had begun restoring a store path.
    let r11 = member(&fleet, "r11").1;
    assert!(
        r11.path(STAGING).exists(),
        "r11's agent was killed before the transfer"
    );

    // Repaired, r11 takes the update; the next receive clears what the killed one left.
    restore_agent(r11);
    let run = fleet.playbook(
        "rolling-update.yml",
        &vars(&up2, &[1], 10),
        &["--limit", "r11"],
    );
    assert!(run.output.status.success(), "{}", text(&run.output));
    assert_eq!(run.row("r11").result, "updated");
    assert_on(&fleet, "r11", 2, &gen2);
    assert!(
        !r11.path(STAGING).exists(),
        "r11: staging left after the retry"
    );
    eprintln!("whole test: {:.1}s", t.elapsed().as_secs_f64());
}

#[test]
fn status_rollback_gc_and_mark_good_run_as_ansible_tasks() {
    let fleet = Fleet::new(2);
    let lab = &fleet.lab;
    let gen1 = lab.generate(&ClosureSpec::small(3));
    let gen2 = lab.derive(&gen1, &["ntp"], 0.3, 4);
    for c in [&gen1, &gen2] {
        let up = lab.updater(c, &Pack::default());
        let mut v = vars(&up, &[2], 0);
        v["liminix_activate"] = "none".into();
        let run = fleet.playbook("rolling-update.yml", &v, &[]);
        assert!(run.output.status.success(), "{}", text(&run.output));
    }
    let hosts = ["r00", "r01"];

    // status: the agent's answer as facts, changing nothing.
    let r = fleet.task("liminix.update.status", "", &[]);
    for h in hosts {
        let facts = &r[h]["ansible_facts"]["liminix"];
        assert_eq!(r[h]["changed"], false, "{h}: {}", r[h]);
        assert_eq!(
            (
                facts["generation"].clone(),
                facts["previous_generation"].clone()
            ),
            (2.into(), 1.into())
        );
        assert_eq!(
            (facts["board"].clone(), facts["toplevel"].clone()),
            ("qemu".into(), gen2.toplevel.clone().into())
        );
        // The same answer as the agent gives over plain ssh, but for the host disk's free bytes.
        let mut told = facts["status"].clone();
        let mut asked = fleet::status(member(&fleet, h).2);
        told["store"]["free_bytes"] = 0.into();
        asked["store"]["free_bytes"] = 0.into();
        assert_eq!(told, asked, "{h}");
    }

    // rollback: check mode says where it would go and changes nothing; then it goes there.
    let before = snapshots(&fleet);
    let r = fleet.task("liminix.update.rollback", "", &["--check"]);
    for h in hosts {
        assert_eq!(
            (r[h]["changed"].clone(), r[h]["to_generation"].clone()),
            (true.into(), 1.into()),
            "{h}: {}",
            r[h]
        );
    }
    assert_unchanged(&fleet, &before, "rollback --check");
    let r = fleet.task("liminix.update.rollback", "", &[]);
    for h in hosts {
        assert_eq!(
            (r[h]["changed"].clone(), r[h]["from_generation"].clone()),
            (true.into(), 2.into()),
            "{h}: {}",
            r[h]
        );
        assert_on(&fleet, h, 1, &gen1);
    }

    // gc: check mode is the agent's dry run; `changed` is whether its plan deletes anything.
    let before = snapshots(&fleet);
    let r = fleet.task("liminix.update.gc", "keep=0", &["--check"]);
    for h in hosts {
        let plan = &r[h]["gc"];
        assert_eq!(plan["dry_run"], true, "{h}: {}", r[h]);
        let deletes = !plan["deleted_paths"].as_array().unwrap().is_empty()
            || !plan["removed_generations"].as_array().unwrap().is_empty();
        assert_eq!(r[h]["changed"], deletes, "{h}: {}", r[h]);
    }
    assert_unchanged(&fleet, &before, "gc --check");

    // mark_good on a board without A/B slots: the agent's refusal, with its kind and code.
    let r = fleet.task("liminix.update.mark_good", "no_check=true", &[]);
    for h in hosts {
        assert_eq!(r[h]["ansible_state"], "FAILED!", "{h}: {}", r[h]);
        let msg = r[h]["msg"].as_str().unwrap_or_default();
        assert!(msg.contains("no A/B slots"), "{h}: {msg}");
        assert_eq!(
            (r[h]["kind"].clone(), r[h]["rc"].clone()),
            ("state".into(), 1.into()),
            "{h}: {}",
            r[h]
        );
    }
}

/// A router reachable only through a jump host (the bastion in front of a site's routers): its
/// inventory address resolves nowhere and its ssh options name a `ProxyCommand` through the jump
/// host, as a user would write them. Check mode, the update (through `update.sh`) and the
/// status facts all reach it that way; the router beside it is reached directly.
#[test]
fn a_router_behind_a_jump_host_is_updated_through_it() {
    let mut fleet = Fleet::new(2);
    let bastion_device = Device::new().expect("jump host");
    let bastion = SshServer::start_jump_host(&bastion_device).expect("jump host sshd");
    fleet.route_through(1, &bastion);
    let behind = member(&fleet, "r01").2.port();
    let gen1 = fleet.lab.generate(&ClosureSpec::small(3));
    let up = fleet.lab.updater(&gen1, &Pack::default());
    let v = vars(&up, &[2], 0);

    let before = snapshots(&fleet);
    let check = fleet.playbook("rolling-update.yml", &v, &["--check"]);
    assert!(check.output.status.success(), "{}", text(&check.output));
    let predicted = check.row("r01").would_send_bytes.unwrap_or(0);
    assert!(predicted > 0, "r01: {:?}", check.row("r01"));
    assert_unchanged(&fleet, &before, "check mode through the jump host");

    let run = fleet.playbook("rolling-update.yml", &v, &[]);
    assert!(run.output.status.success(), "{}", text(&run.output));
    show_table(&run, "behind a jump host");
    for h in ["r00", "r01"] {
        assert_eq!(run.row(h).result, "updated", "{h}: {:?}", run.row(h));
        assert_on(&fleet, h, 1, &gen1);
    }
    assert_eq!(run.row("r01").sent_bytes, predicted);

    // The jump host forwarded connections to the router's port: the way Ansible and update.sh
    // took, since the router's inventory name has no address.
    let forwarded = format!("127.0.0.1 port {behind}");
    let log = bastion.log_text();
    assert!(
        log.lines().any(|l| l.contains(&forwarded)),
        "the jump host's log does not show a connection to port {behind}:\n{log}"
    );
    let r = fleet.task("liminix.update.status", "", &[]);
    assert_eq!(
        r["r01"]["ansible_facts"]["liminix"]["generation"], 1,
        "{}",
        r["r01"]
    );
}
