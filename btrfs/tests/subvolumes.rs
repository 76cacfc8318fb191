//! The crate's operations on a real, loop-mounted btrfs, checked with btrfs-progs
//! (`btrfs subvolume list`/`show`) and the files themselves.

mod common;

use std::process::Command;

use common::{flags, run, Mounted};
use liminix_btrfs as btrfs;

fn listed(m: &Mounted) -> Vec<String> {
    run(Command::new("btrfs")
        .args(["subvolume", "list"])
        .arg(&m.mnt))
    .lines()
    .filter_map(|l| l.split(" path ").nth(1).map(str::to_owned))
    .collect()
}

#[test]
fn create_snapshot_read_only_and_delete_as_btrfs_progs_sees_them() {
    let m = Mounted::new();
    let at = btrfs::create_subvolume(&m.mnt, "@").unwrap();
    std::fs::write(at.join("marker"), "TurrisOS").unwrap();
    assert!(btrfs::is_subvolume(&at).unwrap());
    assert!(!btrfs::is_read_only(&at).unwrap());

    let snap = btrfs::snapshot(&at, &m.mnt, "@snap", true).unwrap();
    assert_eq!(listed(&m), ["@", "@snap"]);
    assert_eq!(flags(&snap), "readonly");
    assert!(btrfs::is_read_only(&snap).unwrap());
    assert_eq!(
        std::fs::read_to_string(snap.join("marker")).unwrap(),
        "TurrisOS"
    );
    // Read-only is enforced by the kernel, not by us.
    assert!(std::fs::write(snap.join("x"), "").is_err());

    let rw = btrfs::snapshot(&snap, &m.mnt, "@rw", false).unwrap();
    assert_eq!(flags(&rw), "-");
    std::fs::write(rw.join("x"), "").unwrap();

    btrfs::set_read_only(&rw, true).unwrap();
    assert_eq!(flags(&rw), "readonly");
    btrfs::set_read_only(&rw, false).unwrap();
    assert_eq!(flags(&rw), "-");

    btrfs::delete_subvolume(&m.mnt, "@rw").unwrap();
    btrfs::delete_subvolume(&m.mnt, "@snap").unwrap();
    assert_eq!(listed(&m), ["@"]);
}

#[test]
fn bad_names_and_non_subvolumes_are_refused() {
    let m = Mounted::new();
    btrfs::create_subvolume(&m.mnt, "@").unwrap();
    for name in ["", ".", "..", "a/b"] {
        let e = btrfs::snapshot(&m.path("@"), &m.mnt, name, true).unwrap_err();
        assert!(
            matches!(e, btrfs::BtrfsError::BadName { .. }),
            "{name:?}: {e}"
        );
    }
    std::fs::create_dir(m.path("plain")).unwrap();
    let e = btrfs::snapshot(&m.path("plain"), &m.mnt, "s", true).unwrap_err();
    assert!(matches!(e, btrfs::BtrfsError::NotSubvolume { .. }), "{e}");
    let e = btrfs::delete_subvolume(&m.mnt, "plain").unwrap_err();
    assert!(matches!(e, btrfs::BtrfsError::NotSubvolume { .. }), "{e}");
    assert!(m.path("plain").is_dir());
    let tmp = tempfile::tempdir().unwrap();
    let e = btrfs::create_subvolume(tmp.path(), "x").unwrap_err();
    assert!(matches!(e, btrfs::BtrfsError::NotBtrfs { .. }), "{e}");
    // An existing name: the kernel's EEXIST, with the path.
    let e = btrfs::create_subvolume(&m.mnt, "@").unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
}

#[test]
fn the_superblock_probe_agrees_with_mkfs() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(128 << 20)
        .unwrap();
    assert!(!btrfs::probe::has_btrfs(&img).unwrap());
    run(Command::new("mkfs.btrfs").arg("-q").arg(&img));
    assert!(btrfs::probe::has_btrfs(&img).unwrap());
    let small = dir.path().join("small");
    std::fs::write(&small, [0u8; 100]).unwrap();
    assert!(!btrfs::probe::has_btrfs(&small).unwrap());
}
