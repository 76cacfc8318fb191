//! The disk images of `liminix_build_tools::image` in a real kernel: an MBR disk whose root
//! partition holds a squashfs of a small root tree is attached to an x86_64 guest; the kernel's
//! partition parser must find both partitions where the writer put them, and the squashfs must
//! mount and show the tree with its modes, root ownership, the fixed mtime, symlink targets,
//! the hard link and byte-equal file contents.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use liminix_build_tools::image::mbr::{self, MbrSpec};
use liminix_build_tools::image::squashfs::{self, Compression, SquashfsSpec};
use liminix_vm::VmBuilder;
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
const EPOCH: u64 = 1_234_567_890;

fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc/empty")).unwrap();
    std::fs::write(root.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    std::fs::set_permissions(
        root.join("bin/tool"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 241) as u8).collect();
    std::fs::write(root.join("etc/data"), big).unwrap();
    std::fs::write(root.join("etc/secret"), b"s").unwrap();
    std::fs::set_permissions(
        root.join("etc/secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::hard_link(root.join("bin/tool"), root.join("etc/tool-link")).unwrap();
    std::os::unix::fs::symlink("bin/tool", root.join("init")).unwrap();
    std::os::unix::fs::symlink("/etc/data", root.join("bin/data")).unwrap();
}

const SCRIPT: &str = r#"
for i in $(seq 50); do [ -e /dev/vda2 ] && break; sleep 0.1; done
for p in vda1 vda2; do
  echo "part $p start=$(cat /sys/block/vda/$p/start) size=$(cat /sys/block/vda/$p/size)"
done
mkdir -p /mnt
mount -t squashfs -o ro /dev/vda1 /mnt
cd /mnt
find . | sort | while read -r p; do
  echo "entry $(stat -c '%A %u:%g %Y' "$p") $p"
  if [ -L "$p" ]; then echo "link $p -> $(readlink "$p")"
  elif [ -f "$p" ]; then echo "sum $(sha256sum "$p")"; fi
done
echo "inodes $(stat -c %i bin/tool) $(stat -c %i etc/tool-link) nlink=$(stat -c %h bin/tool)"
"#;

#[test]
fn kernel_finds_the_partitions_and_mounts_the_squashfs_root() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("root");
    tree(&src);
    let sq = dir.path().join("root.sq");
    let sq_spec = SquashfsSpec {
        compression: Compression::Xz,
        epoch: EPOCH,
        block_size: None,
    };
    squashfs::write(&src, &sq_spec, &sq).unwrap();
    let disk = dir.path().join("disk.img");
    let disk_spec = MbrSpec {
        disk_size: 8 * MIB,
        root_free: MIB,
        second: Some(2 * MIB),
        epoch: Some(EPOCH),
    };
    let layout = mbr::write(&sq, &disk_spec, &disk).unwrap();

    let out = VmBuilder::new()
        .modprobe("squashfs", "")
        .disk(&disk)
        .script(SCRIPT)
        .timeout(180)
        .run()
        .unwrap();
    eprintln!("guest ran {:.1} s", out.elapsed.as_secs_f64());
    out.assert_success();
    let s = &out.serial;

    let second = layout.second.unwrap();
    for (name, p) in [("vda1", layout.root), ("vda2", second)] {
        let line = format!("part {name} start={} size={}\n", p.start, p.sectors);
        assert!(s.contains(&line), "no {line:?} in:\n{s}");
    }
    // Image + 1 MiB free, rounded to whole MiB: the kernel sees the room to grow.
    let root_bytes = std::fs::metadata(&sq).unwrap().len();
    assert_eq!(
        layout.root.sectors * 512,
        (root_bytes + MIB).div_ceil(MIB) * MIB
    );

    let entries: Vec<&str> = s.lines().filter(|l| l.starts_with("entry ")).collect();
    let t = format!("0:0 {EPOCH}");
    let expected: Vec<String> = [
        format!("entry drwxr-xr-x {t} ."),
        format!("entry drwxr-xr-x {t} ./bin"),
        format!("entry lrwxrwxrwx {t} ./bin/data"),
        format!("entry -rwxr-xr-x {t} ./bin/tool"),
        format!("entry drwxr-xr-x {t} ./etc"),
        format!("entry -rw-r--r-- {t} ./etc/data"),
        format!("entry drwxr-xr-x {t} ./etc/empty"),
        format!("entry -rw------- {t} ./etc/secret"),
        format!("entry -rwxr-xr-x {t} ./etc/tool-link"),
        format!("entry lrwxrwxrwx {t} ./init"),
    ]
    .into();
    assert_eq!(entries, expected, "{s}");
    assert!(s.contains("link ./bin/data -> /etc/data\n"), "{s}");
    assert!(s.contains("link ./init -> bin/tool\n"), "{s}");
    for rel in ["bin/tool", "etc/data", "etc/secret", "etc/tool-link"] {
        let sum = hex::encode(Sha256::digest(std::fs::read(src.join(rel)).unwrap()));
        let line = format!("sum {sum}  ./{rel}\n");
        assert!(s.contains(&line), "no {line:?} in:\n{s}");
    }
    let inodes = s
        .lines()
        .find_map(|l| l.strip_prefix("inodes "))
        .unwrap_or_else(|| panic!("no inode line in:\n{s}"));
    let f: Vec<&str> = inodes.split_whitespace().collect();
    assert_eq!(
        f[0], f[1],
        "the hard link is two inodes in the mounted image"
    );
    assert_eq!(f[2], "nlink=2");
}
