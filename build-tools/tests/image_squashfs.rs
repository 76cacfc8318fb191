//! Squashfs images checked by squashfs-tools' reader: `unsquashfs -lls` lists the tree with modes,
//! root ownership, the fixed time and link targets; `unsquashfs -d` extracts byte-equal files and
//! keeps hard links; two builds, even from trees with other mtimes, are byte-identical.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use liminix_build_tools::image::squashfs::{self, Compression, SquashfsError, SquashfsSpec};

/// 2009-02-13 23:31:30 UTC.
const EPOCH: u64 = 1_234_567_890;

fn spec(compression: Compression) -> SquashfsSpec {
    SquashfsSpec {
        compression,
        epoch: EPOCH,
        block_size: None,
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A small closure-like tree: a store path with a binary, a multi-block file, a config file, a
/// hard link, symlinks (relative and absolute, one dangling), a private and an empty directory.
fn tree(dir: &Path) -> PathBuf {
    let root = dir.join("toplevel");
    let store = root.join("nix/store/aaaa-pkg");
    std::fs::create_dir_all(store.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc/empty")).unwrap();
    std::fs::create_dir_all(root.join("secret")).unwrap();
    std::fs::write(store.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    set_mode(&store.join("bin/tool"), 0o755);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(store.join("data.bin"), big).unwrap();
    std::fs::write(root.join("etc/config"), b"key=value\n").unwrap();
    set_mode(&root.join("etc/config"), 0o600);
    std::fs::write(root.join("secret/key"), b"k").unwrap();
    set_mode(&root.join("secret/key"), 0o400);
    set_mode(&root.join("secret"), 0o700);
    std::fs::hard_link(store.join("bin/tool"), root.join("etc/tool-link")).unwrap();
    std::os::unix::fs::symlink("nix/store/aaaa-pkg/bin/tool", root.join("init")).unwrap();
    std::os::unix::fs::symlink("/nix/store/aaaa-pkg", root.join("etc/pkg")).unwrap();
    std::os::unix::fs::symlink("missing", root.join("etc/dangling")).unwrap();
    if rustix::process::geteuid().is_root() {
        // A build tree owned by someone else must still come out root-owned.
        std::os::unix::fs::lchown(root.join("etc/config"), Some(1000), Some(1000)).unwrap();
    }
    root
}

fn unsquashfs(args: &[&str]) -> String {
    let out = Command::new("unsquashfs")
        .args(args)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .output()
        .expect("cannot run unsquashfs (scripts/setup.sh installs squashfs-tools)");
    assert!(out.status.success(), "unsquashfs {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `unsquashfs -lls` rows as (mode, owner, date time, path and link target), sizes left out.
fn listing(image: &Path) -> Vec<String> {
    unsquashfs(&["-lls", image.to_str().unwrap()])
        .lines()
        .filter(|l| l.contains("squashfs-root"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let rest = f[5..].join(" ");
            format!("{} {} {} {} {rest}", f[0], f[1], f[3], f[4])
        })
        .collect()
}

#[test]
fn unsquashfs_lists_the_tree_with_modes_owners_time_and_targets() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("root.sq");
    squashfs::write(&tree(dir.path()), &spec(Compression::Xz), &image).unwrap();
    let t = "root/root 2009-02-13 23:31";
    let r = "squashfs-root";
    let expected: Vec<String> = [
        format!("drwxr-xr-x {t} {r}"),
        format!("drwxr-xr-x {t} {r}/etc"),
        format!("-rw------- {t} {r}/etc/config"),
        format!("lrwxrwxrwx {t} {r}/etc/dangling -> missing"),
        format!("drwxr-xr-x {t} {r}/etc/empty"),
        format!("lrwxrwxrwx {t} {r}/etc/pkg -> /nix/store/aaaa-pkg"),
        format!("-rwxr-xr-x {t} {r}/etc/tool-link"),
        format!("lrwxrwxrwx {t} {r}/init -> nix/store/aaaa-pkg/bin/tool"),
        format!("drwxr-xr-x {t} {r}/nix"),
        format!("drwxr-xr-x {t} {r}/nix/store"),
        format!("drwxr-xr-x {t} {r}/nix/store/aaaa-pkg"),
        format!("drwxr-xr-x {t} {r}/nix/store/aaaa-pkg/bin"),
        format!("-rwxr-xr-x {t} {r}/nix/store/aaaa-pkg/bin/tool"),
        format!("-rw-r--r-- {t} {r}/nix/store/aaaa-pkg/data.bin"),
        format!("drwx------ {t} {r}/secret"),
        format!("-r-------- {t} {r}/secret/key"),
    ]
    .into();
    assert_eq!(listing(&image), expected);
}

fn assert_same_tree(src: &Path, out: &Path) {
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let (a, b) = (entry.path(), out.join(entry.file_name()));
        let (ma, mb) = (a.symlink_metadata().unwrap(), b.symlink_metadata().unwrap());
        assert_eq!(ma.file_type(), mb.file_type(), "{}", b.display());
        if ma.file_type().is_symlink() {
            assert_eq!(a.read_link().unwrap(), b.read_link().unwrap());
            continue;
        }
        assert_eq!(ma.mode(), mb.mode(), "{}", b.display());
        if ma.is_dir() {
            assert_same_tree(&a, &b);
        } else {
            assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
        }
    }
}

#[test]
fn unsquashfs_extracts_byte_equal_files_and_hard_links() {
    let dir = tempfile::tempdir().unwrap();
    let src = tree(dir.path());
    for compression in [Compression::Xz, Compression::Gzip] {
        let image = dir.path().join(format!("{compression:?}.sq"));
        squashfs::write(&src, &spec(compression), &image).unwrap();
        let out = dir.path().join(format!("{compression:?}-out"));
        unsquashfs(&[
            "-no-progress",
            "-d",
            out.to_str().unwrap(),
            image.to_str().unwrap(),
        ]);
        assert_same_tree(&src, &out);
        let a = std::fs::metadata(out.join("etc/tool-link")).unwrap();
        let b = std::fs::metadata(out.join("nix/store/aaaa-pkg/bin/tool")).unwrap();
        assert_eq!(a.ino(), b.ino(), "the hard link came out as two files");
        assert_eq!(a.nlink(), 2);
    }
}

#[test]
fn superblock_is_format_4_0_with_the_compressor_and_time_asked() {
    let dir = tempfile::tempdir().unwrap();
    let src = tree(dir.path());
    for (compression, name) in [(Compression::Xz, "xz"), (Compression::Gzip, "gzip")] {
        let image = dir.path().join(format!("{name}.sq"));
        squashfs::write(&src, &spec(compression), &image).unwrap();
        let stat = unsquashfs(&["-s", image.to_str().unwrap()]);
        assert!(
            stat.contains("Found a valid SQUASHFS 4:0 superblock"),
            "{stat}"
        );
        assert!(stat.contains(&format!("\nCompression {name}\n")), "{stat}");
        assert!(stat.contains("time Fri Feb 13 23:31:30 2009"), "{stat}");
        // The kernel's driver reads the magic "hsqs" and major 4, minor 0 at offsets 0 and 28.
        let bytes = std::fs::read(&image).unwrap();
        assert_eq!(&bytes[0..4], b"hsqs");
        assert_eq!(&bytes[28..32], &[4, 0, 0, 0]);
    }
}

#[test]
fn building_twice_gives_identical_bytes_whatever_the_tree_times() {
    let dir = tempfile::tempdir().unwrap();
    let src = tree(dir.path());
    let a = dir.path().join("a.sq");
    squashfs::write(&src, &spec(Compression::Xz), &a).unwrap();
    // Newer mtimes on the build tree, as a rebuild of the same closure would have.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    for p in ["etc/config", "nix/store/aaaa-pkg/data.bin", "etc"] {
        let f = std::fs::File::open(src.join(p)).unwrap();
        f.set_modified(later).unwrap();
    }
    let b = dir.path().join("b.sq");
    squashfs::write(&src, &spec(Compression::Xz), &b).unwrap();
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
}

#[test]
fn refuses_a_root_that_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = dir.path().join("out.sq");
    let err = squashfs::write(&file, &spec(Compression::Xz), &out).unwrap_err();
    assert!(
        matches!(err, SquashfsError::NotADirectory(ref p) if p == &file),
        "{err:?}"
    );
    assert!(!out.exists());
}
