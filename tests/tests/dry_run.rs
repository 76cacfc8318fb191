//! `update.sh --dry-run` against a device chroot behind a real sshd: it reports what the update
//! would send, and the device's files stay byte-identical; the bytes it predicts are the bytes
//! the real update then sends.

use std::process::Output;

use liminix_tests::closure::ClosureSpec;
use liminix_tests::lab::{text, Lab, Pack};
use liminix_tests::tree::snapshot;

fn events(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn event<'a>(all: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    all.iter().find(|e| e["event"] == name)
}

/// A dry run: it succeeds, and neither `/persist`, `/nix` nor `/run` changes.
fn dry_run(lab: &Lab, up: &std::path::Path) -> Vec<serde_json::Value> {
    let dirs = ["persist", "nix", "run"];
    let before: Vec<_> = dirs.iter().map(|d| snapshot(&lab.device.path(d))).collect();
    let o = lab.update(up, &["--dry-run", "--json"]);
    assert!(o.status.success(), "dry run: {}", text(&o));
    for (d, b) in dirs.iter().zip(before) {
        b.assert_same(&snapshot(&lab.device.path(d)), &format!("dry run: /{d}"));
    }
    events(&o)
}

#[test]
fn a_dry_run_reports_what_would_be_sent_and_changes_nothing() {
    let lab = Lab::new();
    let gen1 = lab.generate(&ClosureSpec::small(1));
    let gen2 = lab.derive(&gen1, &["firewall"], 0.3, 5);
    let up1 = lab.updater(&gen1, &Pack::default());
    let up2 = lab.updater(&gen2, &Pack::default());

    // An empty device: every path would go, and a generation would be installed.
    let e = dry_run(&lab, &up1);
    let plan = event(&e, "would_send").expect("would_send");
    assert_eq!(plan["paths"], gen1.paths.len(), "{plan}");
    let mut listed: Vec<String> = plan["store_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut want = gen1.paths.clone();
    want.sort();
    assert_eq!(listed, want);
    let done = event(&e, "done").expect("done");
    assert_eq!(
        (done["dry_run"].as_bool(), done["would_install"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(
        event(&e, "sending").is_none() && event(&e, "installed").is_none(),
        "{e:?}"
    );

    let o = lab.update(&up1, &["--no-reboot", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let sent = event(&events(&o), "done").unwrap()["sent_bytes"].clone();
    assert_eq!(
        plan["bytes"], sent,
        "predicted and sent bytes of the first install"
    );

    // The installed generation again: nothing would be sent or installed.
    let e = dry_run(&lab, &up1);
    assert_eq!(event(&e, "would_send").unwrap()["paths"], 0);
    assert_eq!(event(&e, "unchanged").unwrap()["generation"], 1);
    assert_eq!(event(&e, "done").unwrap()["would_install"], false);

    // An update: the deltas it would make are the bytes it then sends.
    let e = dry_run(&lab, &up2);
    let plan = event(&e, "would_send").unwrap().clone();
    assert!(
        plan["store_paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["delta"] == true),
        "{plan}"
    );
    let o = lab.update(&up2, &["--no-reboot", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let done = event(&events(&o), "done").unwrap().clone();
    assert_eq!(
        (plan["bytes"].clone(), plan["paths"].clone()),
        (done["sent_bytes"].clone(), done["sent_paths"].clone())
    );
    assert_eq!(lab.status()["current"], 2);

    // The human form names the paths.
    let o = lab.update(&up2, &["--dry-run"]);
    let words = text(&o);
    assert!(o.status.success(), "{words}");
    assert!(words.contains("would send 0 paths, 0 bytes"), "{words}");
    assert!(
        words.contains("dry run: the update would change nothing"),
        "{words}"
    );
}
