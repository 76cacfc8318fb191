//! Damage is contained: one damaged generation record, or a device whose `/nix` is a link,
//! never stops `status`, `rollback`, `gc` or an update.

use std::fs;
use std::os::unix::fs::symlink;

use crate::closure::gc::{booted_generations, gc};
use crate::closure::generations::{Generations, NewGeneration};
use crate::closure::rollback::rollback;
use crate::error::{AgentError, StateError};
use crate::root::DeviceRoot;
use crate::status::{render, status};

/// Device path of test toplevel `n` (a valid store path name: 32 nix32 digits, a name).
fn toplevel(n: u32) -> String {
    let digit = char::from_digit(n, 10).unwrap();
    format!("/nix/store/{}-system-{n}", digit.to_string().repeat(32))
}

/// Puts toplevel `n` in the store (listing only itself) and records it as the current generation.
fn install(root: &DeviceRoot, n: u32) -> u32 {
    let top = toplevel(n);
    // Through the store as the agent resolves it, so that a `/nix` link is followed inside the root.
    let dir = root.store().join(top.trim_start_matches("/nix/store/"));
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(dir.join("bin/activate"), "#!/bin/sh\n").unwrap();
    fs::write(dir.join("bin/init"), "#!/bin/sh\n").unwrap();
    fs::write(dir.join("etc/nix-store-paths"), format!("{top}\n")).unwrap();
    let gens = Generations::new(root);
    let g = gens
        .create(&NewGeneration {
            toplevel: &top,
            board: "qemu",
            epoch: 0,
            build_time: u64::from(n),
            now: 1_795_000_000 + u64::from(n),
        })
        .unwrap();
    gens.switch_to(g).unwrap();
    g
}

fn device(generations: u32) -> (tempfile::TempDir, DeviceRoot) {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("persist")).unwrap();
    fs::create_dir_all(dir.path().join("nix/store")).unwrap();
    let root = DeviceRoot::new(dir.path());
    for n in 1..=generations {
        assert_eq!(install(&root, n), n);
    }
    (dir, root)
}

fn record(root: &DeviceRoot, n: u32, file: &str) -> std::path::PathBuf {
    root.generations().join(n.to_string()).join(file)
}

#[test]
fn a_damaged_generation_is_shown_as_damaged_and_the_rest_still_listed() {
    let (_d, root) = device(3);
    fs::write(record(&root, 2, "info.json"), "{").unwrap();
    let s = status(&root).unwrap();
    let good: Vec<u32> = s.generations.iter().map(|g| g.number).collect();
    assert_eq!(good, [1, 3]);
    assert_eq!(s.damaged.len(), 1);
    assert_eq!(s.damaged[0].number, 2);
    let info = record(&root, 2, "info.json");
    assert!(
        s.damaged[0].problem.starts_with(&format!(
            "{} is not a valid generation record: ",
            info.display()
        )),
        "{}",
        s.damaged[0].problem
    );
    let human = render(&s);
    assert!(human.contains("    2  DAMAGED: "), "{human}");
    assert!(human.contains("[previous]"), "{human}");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["damaged"][0]["number"], 2);
}

#[test]
fn rollback_skips_a_damaged_previous_generation() {
    let (_d, root) = device(3);
    fs::remove_dir_all(root.join(&toplevel(2))).unwrap();
    let r = rollback(&root, None, false).unwrap();
    assert_eq!((r.from, r.to), (Some(3), 1));
    let skipped = r.skipped.unwrap();
    assert_eq!(skipped.number, 2);
    assert_eq!(
        skipped.problem,
        format!("its toplevel {} is missing from the store", toplevel(2))
    );
    assert_eq!(Generations::new(&root).current(), Some(1));
}

#[test]
fn rollback_to_a_damaged_generation_is_refused_by_name() {
    let (_d, root) = device(3);
    fs::remove_file(record(&root, 1, "nix-store-paths")).unwrap();
    let e = rollback(&root, Some(1), false).unwrap_err();
    assert!(
        matches!(e, AgentError::State(StateError::Damaged { number: 1, .. })),
        "{e}"
    );
    assert!(
        e.message().starts_with("generation 1 is damaged: reading "),
        "{}",
        e.message()
    );
    assert_eq!(Generations::new(&root).current(), Some(3));
}

#[test]
fn rollback_with_no_whole_generation_refuses_clearly() {
    let (_d, root) = device(2);
    fs::write(record(&root, 1, "info.json"), "not json").unwrap();
    let e = rollback(&root, None, false).unwrap_err();
    assert!(
        matches!(
            e,
            AgentError::State(StateError::NoWholeGeneration { previous: 1, .. })
        ),
        "{e}"
    );
    assert!(e.to_string().starts_with(
        "no generation to roll back to: the previous one, generation 1, is damaged ("
    ));
    assert_eq!(Generations::new(&root).current(), Some(2));
}

#[test]
fn gc_collects_a_damaged_generation() {
    let (_d, root) = device(3);
    fs::remove_file(record(&root, 2, "info.json")).unwrap();
    fs::remove_file(record(&root, 1, "info.json")).unwrap();
    // Generation 2, the previous one, is damaged too: no use keeping it as a rollback target.
    let plan = gc(&root, 0, false).unwrap();
    assert_eq!(plan.removed_generations, [1, 2]);
    assert_eq!(plan.kept_generations, [3]);
    assert!(!root.generations().join("1").exists());
    assert!(!root.generations().join("2").exists());
    assert!(root.join(&toplevel(3)).exists());
    assert!(!root.join(&toplevel(1)).exists());
}

#[test]
fn an_update_is_not_stopped_by_a_damaged_newest_record() {
    let (_d, root) = device(3);
    fs::write(record(&root, 3, "info.json"), "").unwrap();
    let gens = Generations::new(&root);
    assert_eq!(gens.highest_epoch().unwrap(), 0);
    // A new record never takes the damaged one's number.
    assert_eq!(install(&root, 4), 4);
    assert_eq!(gens.current(), Some(4));
    assert_eq!(gens.previous(), Some(3));
}

#[test]
fn a_nix_directory_that_is_a_link_into_persist_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("persist/nix/store")).unwrap();
    symlink("persist/nix", dir.path().join("nix")).unwrap();
    let root = DeviceRoot::new(dir.path());
    assert_eq!(install(&root, 1), 1);
    assert_eq!(install(&root, 2), 2);
    let s = status(&root).unwrap();
    assert_eq!(s.generations.len(), 2, "{:?}", s.damaged);
    assert!(s.damaged.is_empty());
    let activate = fs::read(record(&root, 2, "activate")).unwrap();
    assert_eq!(activate, b"#!/bin/sh\n");
}

#[test]
fn an_absolute_nix_link_is_followed_inside_the_root() {
    // On the device `/nix -> /persist/nix` means its own /persist; under `--root` it must
    // never mean the host's.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("persist/nix/store")).unwrap();
    symlink("/persist/nix", dir.path().join("nix")).unwrap();
    let root = DeviceRoot::new(dir.path());
    assert_eq!(root.store(), dir.path().join("persist/nix/store"));
    let store = crate::closure::store::Store::open_locked(&root).unwrap();
    assert_eq!(store.dir(), dir.path().join("persist/nix/store"));
    drop(store);
    assert_eq!(install(&root, 1), 1);
    assert_eq!(install(&root, 2), 2);
    let s = status(&root).unwrap();
    assert_eq!(s.generations.len(), 2, "{:?}", s.damaged);
    assert!(s.damaged.is_empty());
    let base = toplevel(2).trim_start_matches("/nix/store/").to_owned();
    assert!(dir.path().join("persist/nix/store").join(&base).is_dir());
    assert!(!std::path::Path::new("/persist/nix/store")
        .join(&base)
        .exists());
    let plan = gc(&root, 0, false).unwrap();
    assert_eq!(plan.kept_generations, [1, 2]);
}

#[test]
fn the_booted_generation_is_found_through_a_nix_link_and_absolute_links() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("persist/nix/store")).unwrap();
    symlink("persist/nix", dir.path().join("nix")).unwrap();
    let root = DeviceRoot::new(dir.path());
    install(&root, 1);
    install(&root, 2);
    fs::create_dir_all(root.join(&format!("{}/etc/s6-rc/compiled", toplevel(1)))).unwrap();
    fs::create_dir_all(root.join("/run/s6-rc")).unwrap();
    // Absolute, as on the device: it means the device's root, never the host's.
    symlink(
        format!("{}/etc/s6-rc/compiled", toplevel(1)),
        root.join("/run/s6-rc/compiled"),
    )
    .unwrap();
    let gens = Generations::new(&root);
    assert_eq!(booted_generations(&root, &gens).unwrap(), [1]);
    let plan = gc(&root, 0, true).unwrap();
    assert_eq!(plan.kept_generations, [1, 2]);
}

#[test]
fn gc_keeps_what_a_damaged_booted_generation_runs() {
    let (_d, root) = device(3);
    fs::create_dir_all(root.join(&format!("{}/etc/s6-rc/compiled", toplevel(1)))).unwrap();
    fs::create_dir_all(root.join("/run/s6-rc")).unwrap();
    symlink(
        format!("{}/etc/s6-rc/compiled", toplevel(1)),
        root.join("/run/s6-rc/compiled"),
    )
    .unwrap();
    // Generation 1 runs, but its info is unreadable: its toplevel link still names what it needs.
    fs::write(record(&root, 1, "info.json"), "").unwrap();
    let plan = gc(&root, 0, false).unwrap();
    assert_eq!(plan.kept_generations, [1, 2, 3]);
    assert!(root.join(&toplevel(1)).exists());
}
