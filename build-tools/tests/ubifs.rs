//! UBIFS images from `image::ubifs::write` read back by ubi_reader: `ubireader_display_info`
//! shows the geometry asked for, `ubireader_extract_files` gives back every file, link and
//! directory of the tree, each with the epoch as its time; two builds of trees that differ
//! only in their times are byte-identical; a tree too big for the LEB budget is refused with
//! the numbers. The kernel mounts these images in tests/tests/vm_ubifs_image.rs.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use liminix_build_tools::image::ubifs::{self, UbifsError, UbifsSpec};

const EPOCH: u64 = 1_700_000_000;

/// The Zyxel NWA50AX's UBI geometry: 2 KiB pages, 128 KiB PEBs, so 126976-byte LEBs.
fn spec(max_leb_count: u64) -> UbifsSpec {
    UbifsSpec {
        min_io: 2048,
        leb_size: 126_976,
        max_leb_count,
        epoch: EPOCH,
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small root: text, noise, an empty file, an executable, a nested directory and links.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/init.d")).unwrap();
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::write(root.join("etc/hostname"), "nwa50ax\n").unwrap();
    fs::write(root.join("etc/empty"), "").unwrap();
    let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    fs::write(root.join("etc/init.d/big.txt"), text).unwrap();
    fs::write(
        root.join("bin/noise"),
        liminix_testdata::pattern(3, 700_000),
    )
    .unwrap();
    fs::set_permissions(root.join("bin/noise"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("../bin/noise", root.join("etc/link")).unwrap();
    std::os::unix::fs::symlink("/nowhere", root.join("dangling")).unwrap();
}

/// Every entry under `a` has its twin under `b`: same kind, mode bits, bytes or link target.
fn assert_same_tree(a: &Path, b: &Path) {
    let mut names: Vec<_> = fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut theirs: Vec<_> = fs::read_dir(b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    theirs.sort();
    assert_eq!(names, theirs, "entries of {}", a.display());
    for name in names {
        let (x, y) = (a.join(&name), b.join(&name));
        let (mx, my) = (
            fs::symlink_metadata(&x).unwrap(),
            fs::symlink_metadata(&y).unwrap(),
        );
        assert_eq!(mx.file_type(), my.file_type(), "{}", x.display());
        if mx.is_symlink() {
            assert_eq!(fs::read_link(&x).unwrap(), fs::read_link(&y).unwrap());
            continue;
        }
        assert_eq!(mx.mode() & 0o7777, my.mode() & 0o7777, "{}", x.display());
        if mx.is_dir() {
            assert_same_tree(&x, &y);
        } else {
            assert!(
                fs::read(&x).unwrap() == fs::read(&y).unwrap(),
                "{}",
                x.display()
            );
        }
    }
}

/// Every entry's time in the extracted tree.
fn assert_times(dir: &Path, epoch: u64) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.mtime() as u64, epoch, "{}", path.display());
        if meta.is_dir() {
            assert_times(&path, epoch);
        }
    }
}

#[test]
fn ubi_reader_shows_the_geometry_and_extracts_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (src, img) = (dir.path().join("root"), dir.path().join("root.ubifs"));
    make_tree(&src);
    ubifs::write(&src, &spec(256), &img).unwrap();
    let info = run(Command::new("ubireader_display_info").arg(&img));
    for want in [
        "min_io_size: 2048",
        "leb_size: 126976",
        "max_leb_cnt: 256",
        "default_compr: 1",
    ] {
        assert!(
            info.lines().any(|l| l.trim() == want),
            "no {want:?} in ubireader's listing"
        );
    }
    let out = dir.path().join("extracted");
    // -k: the modes as stored (the test runs as root, which it needs).
    run(Command::new("ubireader_extract_files")
        .arg("-k")
        .arg("-o")
        .arg(&out)
        .arg(&img));
    assert_same_tree(&src, &out);
    assert_times(&out, EPOCH);
}

#[test]
fn trees_differing_only_in_times_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("root");
    make_tree(&src);
    let one = dir.path().join("one.ubifs");
    ubifs::write(&src, &spec(256), &one).unwrap();
    // New mtimes (and so new ctimes); the build read every file, so the atimes moved too.
    for f in ["etc/hostname", "bin/noise", "etc/init.d/big.txt"] {
        let file = fs::File::options().append(true).open(src.join(f)).unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
    }
    let two = dir.path().join("two.ubifs");
    ubifs::write(&src, &spec(256), &two).unwrap();
    let (one, two) = (fs::read(&one).unwrap(), fs::read(&two).unwrap());
    let differ: Vec<_> = (0..one.len().min(two.len()))
        .filter(|&i| one[i] != two[i])
        .take(16)
        .collect();
    assert!(
        one.len() == two.len() && differ.is_empty(),
        "bytes differ at {differ:?}"
    );
}

#[test]
fn the_epoch_is_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("root");
    make_tree(&src);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ubifs::write(&src, &spec(256), &a).unwrap();
    let later = UbifsSpec {
        epoch: EPOCH + 1,
        ..spec(256)
    };
    ubifs::write(&src, &later, &b).unwrap();
    assert!(fs::read(&a).unwrap() != fs::read(&b).unwrap());
    let out = dir.path().join("extracted");
    run(Command::new("ubireader_extract_files")
        .arg("-o")
        .arg(&out)
        .arg(&b));
    assert_times(&out, EPOCH + 1);
}

#[test]
fn a_tree_over_the_leb_budget_is_refused_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("root");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("noise"), liminix_testdata::pattern(5, 3_000_000)).unwrap();
    let out = dir.path().join("root.ubifs");
    let err = ubifs::write(&src, &spec(30), &out).unwrap_err();
    let UbifsError::TooBig {
        needed,
        max_leb_count,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(*needed > 30 && *max_leb_count == 30, "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("needs {needed} LEBs of 126976 bytes")),
        "{msg}"
    );
    assert!(
        msg.contains("30 the filesystem may have (3809280 bytes)"),
        "{msg}"
    );
    assert!(!out.exists());
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "the tool's temporary output was left behind");
}

#[test]
fn tool_failures_keep_its_words() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("root");
    make_tree(&src);
    // Fewer LEBs than the filesystem's fixed areas need, whatever the tree.
    let err = ubifs::write(&src, &spec(5), &dir.path().join("x")).unwrap_err();
    assert!(matches!(err, UbifsError::Failed { .. }), "{err:?}");
    assert!(
        err.to_string().contains("too low max. count of LEBs"),
        "{err}"
    );
}

#[test]
fn a_missing_tree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = ubifs::write(&dir.path().join("nope"), &spec(64), &dir.path().join("x")).unwrap_err();
    assert!(matches!(err, UbifsError::NotADirectory(_)), "{err:?}");
}

/// Set in the child run of `a_missing_tool_is_named`, whose PATH is empty.
const NO_TOOL_CHILD: &str = "LIMINIX_UBIFS_NO_TOOL_CHILD";

/// The test re-runs itself with an empty PATH (changing this process's environment would
/// race with the other tests) and the child checks the error.
#[test]
fn a_missing_tool_is_named() {
    if std::env::var_os(NO_TOOL_CHILD).is_some() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("root");
        make_tree(&src);
        let err = ubifs::write(&src, &spec(64), &dir.path().join("x")).unwrap_err();
        assert!(matches!(err, UbifsError::Spawn(_)), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("cannot run mkfs.ubifs (install mtd-utils)"),
            "{msg}"
        );
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_missing_tool_is_named", "--nocapture"])
        .env(NO_TOOL_CHILD, "1")
        .env("PATH", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child run: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What [`ubifs::normalize`] makes of bytes that are not what mkfs.ubifs writes: an error
/// naming the place, never a panic or a half-rewritten image passed on as good.
#[test]
fn normalize_refuses_what_is_not_ubifs() {
    let s = spec(256);
    let mut noise = liminix_testdata::pattern(11, 4 * 126_976);
    assert!(matches!(
        ubifs::normalize(&mut noise, &s),
        Err(UbifsError::Malformed(_))
    ));
    let mut short = vec![0u8; 10];
    assert!(matches!(
        ubifs::normalize(&mut short, &s),
        Err(UbifsError::Malformed(_))
    ));

    let dir = tempfile::tempdir().unwrap();
    let (src, img) = (dir.path().join("root"), dir.path().join("root.ubifs"));
    make_tree(&src);
    ubifs::write(&src, &s, &img).unwrap();
    let good = fs::read(&img).unwrap();
    // The superblock cut short of the UUID.
    let mut cut = good[..100].to_vec();
    assert!(matches!(
        ubifs::normalize(&mut cut, &s),
        Err(UbifsError::Malformed(_))
    ));
    // A main-area node claiming more bytes than its LEB has: the first node of the first
    // main-area LEB, found from the superblock's area sizes.
    let le32 = |at: usize| u32::from_le_bytes(good[at..at + 4].try_into().unwrap()) as usize;
    let main = 3 + le32(56) + le32(60) + le32(64);
    let node = main * 126_976;
    let mut bad = good.clone();
    bad[node + 16..node + 20].copy_from_slice(&200_000u32.to_le_bytes());
    let err = ubifs::normalize(&mut bad, &s).unwrap_err();
    assert!(err.to_string().contains(&format!("LEB {main}")), "{err}");
    // Normalising a normalised image changes nothing.
    let mut again = good.clone();
    ubifs::normalize(&mut again, &s).unwrap();
    assert!(again == good);
}
