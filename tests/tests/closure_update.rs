//! Closure updates end to end: `update.sh` from `liminix-pack updater`, a real OpenSSH sshd, and the
//! static agent inside a chroot that looks like a Liminix device. Only s6-rc and reboot are stand-ins
//! (recording scripts at the process boundary: s6-rc is not packaged for Debian).

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use liminix_bundle::nar;
use liminix_bundle::wire::{exit, ErrorKind};
use liminix_tests::closure::{Closure, ClosureSpec};
use liminix_tests::device::{convfile_lines, Device};
use liminix_tests::lab::{text, Lab, Pack};
use liminix_tests::tree::{self, Snapshot};

fn assert_ok(o: &std::process::Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}",
        o.status,
        text(o)
    );
}

/// Every path of `c` is on the device and hashes like the build host's copy.
fn assert_closure_on_device(lab: &Lab, c: &Closure) {
    for p in &c.paths {
        let rel = p.trim_start_matches('/');
        let host = nar::hash_path(&lab.store_root().join(rel)).unwrap();
        let dev =
            nar::hash_path(&lab.device.path(rel)).unwrap_or_else(|e| panic!("{p} on device: {e}"));
        assert_eq!(host, dev, "{p} differs on the device");
    }
}

fn current(lab: &Lab) -> Option<u64> {
    lab.status()["current"].as_u64()
}

fn store_entries(device: &Device) -> BTreeSet<String> {
    fs::read_dir(device.path("nix/store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

fn persist_snapshot(device: &Device) -> Vec<(String, String)> {
    let mut out = Vec::new();
    snapshot(&device.path("persist"), "", &mut out);
    out
}

fn snapshot(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let meta = fs::symlink_metadata(e.path()).unwrap();
        if meta.file_type().is_symlink() {
            out.push((
                name,
                format!("-> {}", fs::read_link(e.path()).unwrap().display()),
            ));
        } else if meta.is_dir() {
            if name != "/nix" {
                snapshot(&e.path(), &name, out);
            }
        } else {
            out.push((name, hex::encode(fs::read(e.path()).unwrap())));
        }
    }
}

#[test]
fn first_install_on_empty_device_then_reboot() {
    let lab = Lab::new();
    let a = lab.generate(&ClosureSpec::small(1));
    let up = lab.updater(&a, &Pack::default());
    let o = lab.update(&up, &[]);
    assert_ok(&o, "update.sh");
    assert_closure_on_device(&lab, &a);
    // Liminix's file layout: activate is a regular file behind the link, init and the list follow.
    let persist = lab.device.path("persist");
    assert_eq!(
        fs::read_link(persist.join("activate")).unwrap().to_str(),
        Some("generations/current/activate")
    );
    let activate = fs::read(persist.join("activate")).unwrap();
    assert_eq!(
        activate,
        fs::read(lab.store_root().join(&a.toplevel[1..]).join("bin/activate")).unwrap()
    );
    assert!(
        fs::symlink_metadata(persist.join("generations/current/activate"))
            .unwrap()
            .is_file()
    );
    let listed = fs::read_to_string(persist.join("nix-store-paths")).unwrap();
    let mut listed: Vec<String> = listed.lines().map(str::to_owned).collect();
    listed.sort();
    assert_eq!(listed, a.store_paths_file_entries());
    // The configuration link resolves inside the device to the toplevel.
    let out = lab
        .device
        .run_in_chroot("for l in /persist/*.configuration; do readlink -f $l; done")
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), a.toplevel);
    let init = lab
        .device
        .run_in_chroot("readlink -f /persist/init")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&init.stdout).starts_with("/nix/store/"),
        "init resolves into the store"
    );
    assert!(
        lab.device
            .recorded_calls()
            .iter()
            .any(|c| c.starts_with("reboot")),
        "{:?}",
        lab.device.recorded_calls()
    );
    let st = lab.status();
    assert_eq!(st["current"], 1);
    assert_eq!(st["generations"][0]["toplevel"], a.toplevel.as_str());
}

#[test]
fn reapplying_the_installed_generation_copies_nothing() {
    let lab = Lab::new();
    let a = lab.generate(&ClosureSpec::small(2));
    let up = lab.updater(&a, &Pack::default());
    assert_ok(&lab.update(&up, &["--no-reboot"]), "first update");
    let before = persist_snapshot(&lab.device);
    let o = lab.update(&up, &["--json", "--no-reboot"]);
    assert_ok(&o, "second update");
    let done = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "done")
        .expect("done event");
    assert_eq!(done["sent_paths"], 0);
    assert_eq!(done["sent_bytes"], 0);
    assert_eq!(
        persist_snapshot(&lab.device),
        before,
        "nothing on /persist changed"
    );
    assert!(lab.device.recorded_calls().is_empty());
}

/// Boots A, then three `--fast` updates in a row, each changing one service; every time the
/// restart list must come from comparing the running database with the new one.
#[test]
fn fast_updates_three_times_in_a_row() {
    let lab = Lab::new();
    let a = lab.generate(&ClosureSpec::small(3));
    assert_ok(
        &lab.update(&lab.updater(&a, &Pack::default()), &["--no-reboot"]),
        "install A",
    );
    lab.device.boot_as(&a.toplevel).unwrap();
    let mut prev = a;
    for (round, service) in ["dhcpc-wan", "ntp", "hostapd-wlan0"].iter().enumerate() {
        lab.device.clear_recorded_calls();
        let next = lab.derive(&prev, &[service], 0.0, 10 + round as u64);
        let up = lab.updater(&next, &Pack::default());
        // Flags after the host, as users type them.
        let o = lab.update(&up, &[&lab.sshd.host(), "--fast"]);
        assert_ok(&o, "update --fast");
        let calls = lab.device.recorded_calls();
        let update_call = calls
            .iter()
            .find(|c| c.contains("s6-rc-update"))
            .unwrap_or_else(|| panic!("no s6-rc-update in {calls:?}"));
        let restarted: BTreeSet<String> = convfile_lines(update_call)
            .expect("conversion file recorded")
            .iter()
            .map(|l| l.trim_end_matches(" restart").to_owned())
            .collect();
        assert_eq!(
            restarted,
            Closure::restarts_between(&prev, &next),
            "round {round}: {calls:?}"
        );
        assert!(restarted.contains(*service) && restarted.contains("firewall"));
        assert!(
            update_call.contains(&next.db),
            "s6-rc-update is given the resolved new database: {update_call}"
        );
        assert!(
            calls
                .iter()
                .any(|c| c.contains("s6-rc -u -p change default")),
            "{calls:?}"
        );
        assert!(!calls.iter().any(|c| c.starts_with("reboot")));
        let live = lab
            .device
            .run_in_chroot("readlink -f /run/s6-rc/compiled")
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&live.stdout).trim(), next.db);
        prev = next;
    }
    assert_eq!(current(&lab), Some(4));
}

#[test]
fn killed_transfer_leaves_the_device_unchanged_and_a_retry_resumes() {
    let lab = Lab::new();
    let spec = ClosureSpec {
        packages: 40,
        total_bytes: 14_000_000,
        ..ClosureSpec::small(4)
    };
    let a = lab.generate(&spec);
    let up = lab.updater(&a, &Pack::default());
    let bundle_len = fs::metadata(Lab::bundle_of(&up)).unwrap().len();
    // A pipe that dies after 70% of the bundle, as a dropped link would. (dd passes each read on
    // at once; `head -c` would hold back the header and the two ends would wait for each other.)
    let cut = lab.host.path().join("cut-ssh");
    let script = format!(
        "#!/bin/sh\ndd bs=65536 iflag=count_bytes count={} status=none | \"$@\"\n",
        bundle_len * 7 / 10
    );
    fs::write(&cut, script).unwrap();
    Command::new("chmod").arg("755").arg(&cut).status().unwrap();
    let before = persist_snapshot(&lab.device);
    let o = lab.update_with_ssh(
        &up,
        &[],
        &format!("{} {}", cut.display(), lab.sshd.ssh_command()),
    );
    assert!(
        !o.status.success(),
        "a cut transfer must fail: {}",
        text(&o)
    );
    assert_eq!(
        persist_snapshot(&lab.device),
        before,
        "no generation switched"
    );
    assert!(
        lab.device.recorded_calls().is_empty(),
        "no reboot after a failed update"
    );
    let kept = store_entries(&lab.device);
    assert!(
        !kept.is_empty() && kept.len() < a.paths.len(),
        "verified batches stay for the retry ({} of {})",
        kept.len(),
        a.paths.len()
    );
    for name in &kept {
        let host = nar::hash_path(&lab.store_root().join("nix/store").join(name)).unwrap();
        assert_eq!(
            host,
            nar::hash_path(&lab.device.path("nix/store").join(name)).unwrap(),
            "{name} is complete"
        );
    }
    let o = lab.update(&up, &["--json", "--no-reboot"]);
    assert_ok(&o, "retry");
    let sending = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "sending")
        .expect("sending event");
    assert_eq!(
        sending["paths"].as_u64().unwrap() as usize,
        a.paths.len() - kept.len(),
        "the retry sends only what is missing"
    );
    assert_closure_on_device(&lab, &a);
    assert_eq!(current(&lab), Some(1));
}

#[test]
fn one_flipped_byte_is_refused() {
    let lab = Lab::new();
    let a = lab.generate(&ClosureSpec::small(5));
    let up = lab.updater(&a, &Pack::default());
    let bundle = Lab::bundle_of(&up);
    let (header, entries) = liminix_build_tools::pack::index(&bundle).unwrap();
    let victim = entries.iter().max_by_key(|e| e.len).unwrap();
    let mut bytes = fs::read(&bundle).unwrap();
    bytes[(victim.offset + victim.len / 2) as usize] ^= 0x01;
    fs::write(&bundle, &bytes).unwrap();
    let verify = Command::new(liminix_tests::device::pack_binary())
        .arg("verify")
        .arg(&bundle)
        .arg("--trust")
        .arg(&lab.public)
        .output()
        .unwrap();
    assert!(!verify.status.success(), "liminix-pack verify must fail");
    let o = lab.update(&up, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let victim_path = &header.manifest.paths[victim.header.index as usize].path;
    assert!(
        text(&o).contains(victim_path.as_str()),
        "the error names the path: {}",
        text(&o)
    );
    assert!(!lab
        .device
        .path(victim_path.trim_start_matches('/'))
        .exists());
    assert!(!lab.device.path("persist/generations").exists());
    assert!(lab.device.recorded_calls().is_empty());
}

fn assert_refused_unchanged(lab: &Lab, up: &Path, code: i32, kind: ErrorKind, words: &str) {
    let store = store_entries(&lab.device);
    let persist = persist_snapshot(&lab.device);
    let o = lab.update(up, &[]);
    assert_eq!(o.status.code(), Some(code), "{}", text(&o));
    assert_eq!(code, kind.exit_code());
    // The client names the kind the agent sent.
    assert!(
        text(&o).contains(&format!("refused the update ({kind})")),
        "kind {kind}: {}",
        text(&o)
    );
    assert!(
        text(&o).contains(words),
        "message should say {words:?}: {}",
        text(&o)
    );
    assert_eq!(store_entries(&lab.device), store, "store unchanged");
    assert_eq!(persist_snapshot(&lab.device), persist, "/persist unchanged");
    assert!(lab.device.recorded_calls().is_empty());
}

#[test]
fn untrusted_key_wrong_board_and_lower_epoch_are_refused() {
    let lab = Lab::new();
    let a = lab.generate(&ClosureSpec::small(6));
    let other_sec = lab.host.path().join("other.sec");
    let o = Command::new(liminix_tests::device::pack_binary())
        .args(["keygen", "--secret"])
        .arg(&other_sec)
        .arg("--public")
        .arg(lab.host.path().join("other.pub"))
        .output()
        .unwrap();
    assert_ok(&o, "keygen");
    assert_refused_unchanged(
        &lab,
        &lab.updater(
            &a,
            &Pack {
                key: Some(other_sec),
                ..Pack::default()
            },
        ),
        3,
        ErrorKind::Untrusted,
        "no trusted signature",
    );
    assert_refused_unchanged(
        &lab,
        &lab.updater(
            &a,
            &Pack {
                board: "gl-ar750".into(),
                ..Pack::default()
            },
        ),
        4,
        ErrorKind::WrongBoard,
        "board",
    );
    assert_ok(
        &lab.update(
            &lab.updater(
                &a,
                &Pack {
                    epoch: 2,
                    ..Pack::default()
                },
            ),
            &["--no-reboot"],
        ),
        "epoch 2",
    );
    let b = lab.derive(&a, &["ntp"], 0.1, 60);
    assert_refused_unchanged(
        &lab,
        &lab.updater(
            &b,
            &Pack {
                epoch: 1,
                ..Pack::default()
            },
        ),
        4,
        ErrorKind::Epoch,
        "epoch",
    );
}

#[test]
fn a_full_filesystem_is_refused_before_the_first_write() {
    let lab = Lab::new();
    lab.device.mount_tmpfs_store(1 << 20).unwrap();
    let a = lab.generate(&ClosureSpec::small(7));
    let up = lab.updater(&a, &Pack::default());
    assert_refused_unchanged(&lab, &up, 5, ErrorKind::NoSpace, "not enough space");
    assert!(
        fs::read_dir(lab.device.path("nix/store/.liminix-staging"))
            .map_or(true, |mut d| d.next().is_none()),
        "nothing staged"
    );
}

#[test]
fn rollback_switches_generations_atomically_and_back() {
    let lab = Lab::new();
    let a = lab.generate(&ClosureSpec::small(8));
    let b = lab.derive(&a, &["dnsmasq-lan"], 0.2, 80);
    assert_ok(
        &lab.update(&lab.updater(&a, &Pack::default()), &["--no-reboot"]),
        "install A",
    );
    assert_ok(
        &lab.update(&lab.updater(&b, &Pack::default()), &["--no-reboot"]),
        "install B",
    );
    let act = |c: &Closure| {
        fs::read(lab.store_root().join(&c.toplevel[1..]).join("bin/activate")).unwrap()
    };
    assert_eq!(
        fs::read(lab.device.path("persist/activate")).unwrap(),
        act(&b)
    );
    assert_ok(&lab.agent("rollback"), "rollback");
    let st = lab.status();
    assert_eq!(
        (st["current"].as_u64(), st["previous"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        fs::read(lab.device.path("persist/activate")).unwrap(),
        act(&a)
    );
    let listed = fs::read_to_string(lab.device.path("persist/nix-store-paths")).unwrap();
    assert_eq!(listed.lines().count(), a.store_paths_file_entries().len());
    assert_ok(&lab.agent("rollback 2"), "roll forward");
    assert_eq!(current(&lab), Some(2));
    let o = lab.agent("rollback 9");
    assert_eq!(o.status.code(), Some(exit::FAILURE), "{}", text(&o));
    assert!(
        !o.status.success() && text(&o).contains("no generation 9"),
        "{}",
        text(&o)
    );
}

#[test]
fn gc_keeps_current_previous_booted_and_newest() {
    let lab = Lab::new();
    let a = lab.generate(&ClosureSpec::small(9));
    let b = lab.derive(&a, &["ntp"], 0.3, 90);
    let c = lab.derive(&b, &["firewall"], 0.3, 91);
    assert_ok(
        &lab.update(&lab.updater(&a, &Pack::default()), &["--no-reboot"]),
        "install A",
    );
    lab.device.boot_as(&a.toplevel).unwrap();
    assert_ok(
        &lab.update(&lab.updater(&b, &Pack::default()), &["--no-reboot"]),
        "install B",
    );
    assert_ok(
        &lab.update(&lab.updater(&c, &Pack::default()), &["--no-reboot"]),
        "install C",
    );
    // An ad-hoc copy nobody references, and debris of an interrupted earlier gc.
    let stray = "00000000000000000000000000000000-stray-1.0";
    fs::create_dir_all(lab.device.path("nix/store").join(stray)).unwrap();
    fs::create_dir_all(
        lab.device
            .path("nix/store/.liminix-trash/11111111111111111111111111111111-half"),
    )
    .unwrap();
    // Running A (booted), C current, B previous: with --keep 1 all three stay, only the stray goes.
    let o = lab.agent("gc --keep 1 --json");
    assert_ok(&o, "gc");
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["kept_generations"], serde_json::json!([1, 2, 3]));
    assert_eq!(
        plan["deleted_paths"],
        serde_json::json!([format!("/nix/store/{stray}")])
    );
    assert!(!lab.device.path("nix/store/.liminix-trash").exists());
    // After booting C, A is neither current, previous, booted nor among the newest 1.
    lab.device.boot_as(&c.toplevel).unwrap();
    let only_a: BTreeSet<&String> = a
        .paths
        .iter()
        .filter(|p| !b.paths.contains(p) && !c.paths.contains(p))
        .collect();
    let dry = lab.agent("gc --keep 1 --dry-run --json");
    assert_ok(&dry, "gc --dry-run");
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(
        plan["deleted_paths"].as_array().unwrap().len(),
        only_a.len()
    );
    assert!(
        only_a
            .iter()
            .all(|p| lab.device.path(p.trim_start_matches('/')).exists()),
        "dry run deletes nothing"
    );
    assert_ok(&lab.agent("gc --keep 1"), "gc");
    assert!(only_a
        .iter()
        .all(|p| !lab.device.path(p.trim_start_matches('/')).exists()));
    assert_closure_on_device(&lab, &b);
    assert_closure_on_device(&lab, &c);
    let st = lab.status();
    let numbers: Vec<u64> = st["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![2, 3]);
    let links = lab
        .device
        .run_in_chroot("ls /persist | grep -c configuration")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&links.stdout).trim(),
        "2",
        "A's configuration link went with it"
    );
}

#[test]
fn device_without_agent_gets_a_clear_error() {
    let lab = Lab::with_device(Device::builder().build().unwrap());
    let a = lab.generate(&ClosureSpec::small(10));
    // Without --agent, update.sh sends its own agent (tests/tests/bootstrap.rs); an agent named
    // on the command line is used as it is, so its absence is still this error.
    let o = lab.update(
        &lab.updater(&a, &Pack::default()),
        &["--agent", "liminix-agent"],
    );
    assert_eq!(o.status.code(), Some(8), "{}", text(&o));
    assert!(text(&o).contains("has no `liminix-agent`"), "{}", text(&o));
}

#[test]
fn a_factory_flashed_system_becomes_generation_zero() {
    let lab = Lab::new();
    let a = lab.generate(&ClosureSpec::small(11));
    let b = lab.derive(&a, &["ntp"], 0.1, 110);
    // The factory image: A's store paths and plain activate/init files, no generation records.
    assert_ok(
        &lab.update(&lab.updater(&a, &Pack::default()), &["--no-reboot"]),
        "seed store",
    );
    fs::remove_dir_all(lab.device.path("persist/generations")).unwrap();
    for f in ["activate", "init", "nix-store-paths"] {
        fs::remove_file(lab.device.path("persist").join(f)).unwrap();
    }
    lab.device.install_image(&a.toplevel).unwrap();
    let factory_activate = fs::read(lab.device.path("persist/activate")).unwrap();
    assert_ok(
        &lab.update(&lab.updater(&b, &Pack::default()), &["--no-reboot"]),
        "first update",
    );
    let st = lab.status();
    assert_eq!(
        (st["current"].as_u64(), st["previous"].as_u64()),
        (Some(1), Some(0))
    );
    assert_ok(&lab.agent("rollback"), "rollback to the factory system");
    assert_eq!(
        fs::read(lab.device.path("persist/activate")).unwrap(),
        factory_activate
    );
}

/// The Turris Omnia install from the recovery USB stick: the target root is an empty btrfs `@`
/// subvolume mounted at /dest/@, which is itself the persist filesystem; trust and board come from
/// the running recovery system.
#[test]
fn install_into_another_root_from_a_recovery_system() {
    let lab = Lab::new();
    fs::create_dir_all(lab.device.path("dest/@")).unwrap();
    let a = lab.generate(&ClosureSpec::small(12));
    let o = lab.update(
        &lab.updater(&a, &Pack::default()),
        &["--root", "/dest/@", "--no-reboot"],
    );
    assert_ok(&o, "update.sh --root /dest/@");
    let top = lab.device.path("dest/@").join(&a.toplevel[1..]);
    assert!(
        top.join("bin/activate").exists(),
        "closure under the target root"
    );
    assert!(
        !lab.device.path(&a.toplevel[1..]).exists(),
        "nothing in the recovery system's own store"
    );
    let act = fs::read(lab.device.path("dest/@/activate")).unwrap();
    assert_eq!(act, fs::read(top.join("bin/activate")).unwrap());
    let link = lab
        .device
        .run_in_chroot("cd /dest/@ && readlink -f *.configuration")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&link.stdout).trim(),
        format!("/dest/@{}", a.toplevel)
    );
    assert!(lab.device.recorded_calls().is_empty());
    let st = lab.agent("status --json --root /dest/@");
    assert_ok(&st, "status --root");
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["current"], 1);
}

/// What a refused update must leave byte-identical: the store, /persist, the agent's identity,
/// its run directory and a would-be recovery target.
fn device_state(lab: &Lab) -> Vec<(&'static str, Snapshot)> {
    ["nix", "persist", "etc/liminix", "run/liminix", "dest"]
        .into_iter()
        .map(|d| (d, tree::snapshot(&lab.device.path(d))))
        .collect()
}

fn assert_state_unchanged(lab: &Lab, before: &[(&'static str, Snapshot)], what: &str) {
    for ((dir, was), (_, now)) in before.iter().zip(device_state(lab)) {
        was.assert_same(&now, &format!("{what} (/{dir})"));
    }
}

/// Refused first installs through update.sh: a corrupt entry after store paths were already
/// committed in batches, and a `--root` that does not exist. The device's tree is the same after.
#[test]
fn refused_first_installs_leave_the_device_as_it_was() {
    let lab = Lab::new();
    let spec = ClosureSpec {
        packages: 30,
        total_bytes: 10_000_000,
        ..ClosureSpec::small(13)
    };
    let a = lab.generate(&spec);
    let up = lab.updater(&a, &Pack::default());
    let bundle = Lab::bundle_of(&up);
    let (_, entries) = liminix_build_tools::pack::index(&bundle).unwrap();
    let last = entries.iter().max_by_key(|e| e.offset).unwrap();
    let mut bytes = fs::read(&bundle).unwrap();
    bytes[(last.offset + last.len / 2) as usize] ^= 0x01;
    fs::write(&bundle, &bytes).unwrap();
    let before = device_state(&lab);
    let o = lab.update(&up, &[]);
    assert_eq!(o.status.code(), Some(exit::VERIFY), "{}", text(&o));
    assert_state_unchanged(&lab, &before, "a corrupt last entry");
    let o = lab.update(&up, &["--root", "/dest/nothing", "--no-reboot"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("opening the device root"), "{}", text(&o));
    assert_state_unchanged(&lab, &before, "a missing --root");
    assert!(lab.device.recorded_calls().is_empty());
}

/// An agent whose session ends cleanly before it says "installed" (here: its events cut off
/// after `want`) is not an update that succeeded.
#[test]
fn a_session_that_ends_without_a_verdict_is_a_failure() {
    let lab = Lab::new();
    let a = lab.generate(&ClosureSpec::small(13));
    let cut = lab.device.path("bin/cut-agent");
    // `read`/`echo`, not `head`: head would hold the lines in its buffer until it exits.
    let script =
        "#!/bin/sh\nliminix-agent \"$@\" | { read -r a; echo \"$a\"; read -r b; echo \"$b\"; }\n";
    fs::write(&cut, script).unwrap();
    fs::set_permissions(&cut, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = lab.update(
        &lab.updater(&a, &Pack::default()),
        &["--no-reboot", "--agent", "/bin/cut-agent"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("ended the session without saying the generation was installed"),
        "{}",
        text(&o)
    );
}
