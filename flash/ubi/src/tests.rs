//! Unit tests on a fake sysfs tree; the real driver is exercised in the VM tests.

use std::fs;

use super::*;

fn fake_volume(root: &Path, ubi: u32, id: u32, name: &str, kind: &str) {
    let d = sysfs::device_dir(root, ubi).join(format!("ubi{ubi}_{id}"));
    fs::create_dir_all(&d).unwrap();
    for (k, v) in [
        ("name", name),
        ("type", kind),
        ("reserved_ebs", "9"),
        ("usable_eb_size", "126976"),
        ("data_bytes", "1142784"),
        ("corrupted", "0"),
        ("upd_marker", if name == "broken" { "1" } else { "0" }),
    ] {
        fs::write(d.join(k), format!("{v}\n")).unwrap();
    }
}

fn fixture() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let d = sysfs::device_dir(t.path(), 0);
    fs::create_dir_all(&d).unwrap();
    for (k, v) in [
        ("mtd_num", "3"),
        ("avail_eraseblocks", "1900"),
        ("eraseblock_size", "126976"),
        ("total_eraseblocks", "2004"),
        ("min_io_size", "2048"),
        ("max_vol_count", "128"),
        ("volumes_count", "3"),
        ("bad_peb_count", "0"),
    ] {
        fs::write(d.join(k), format!("{v}\n")).unwrap();
    }
    fake_volume(t.path(), 0, 0, "kernel", "static");
    fake_volume(t.path(), 0, 1, "rootfs", "dynamic");
    fake_volume(t.path(), 0, 12, "broken", "dynamic");
    fs::create_dir_all(t.path().join("sys/class/ubi/ubi0_1")).unwrap();
    fs::create_dir_all(sysfs::device_dir(t.path(), 2)).unwrap();
    fake_volume(t.path(), 2, 4, "data", "dynamic");
    t
}

#[test]
fn device_info_from_sysfs() {
    let t = fixture();
    let i = sysfs::device_info(t.path(), 0).unwrap();
    assert_eq!(
        (i.mtd_num, i.eb_size, i.total_ebs, i.avail_ebs),
        (3, 126976, 2004, 1900)
    );
    assert_eq!(sysfs::devices(t.path()).unwrap(), vec![0, 2]);
}

#[test]
fn volumes_sorted_with_kinds_and_markers() {
    let t = fixture();
    let v = sysfs::volumes(t.path(), 0).unwrap();
    let ids: Vec<u32> = v.iter().map(|v| v.id).collect();
    assert_eq!(ids, vec![0, 1, 12]);
    assert_eq!(v[0].kind, VolumeKind::Static);
    assert_eq!(v[1].kind, VolumeKind::Dynamic);
    assert!(v[2].upd_marker && !v[1].upd_marker);
    assert_eq!(v[1].data_bytes, 1142784);
}

#[test]
fn resolves_volume_specs() {
    let t = fixture();
    let r = t.path();
    assert_eq!(resolve_volume(r, "ubi0:rootfs").unwrap(), (0, 1));
    assert_eq!(resolve_volume(r, "ubi:data").unwrap(), (2, 4));
    assert_eq!(resolve_volume(r, "ubi0_12").unwrap(), (0, 12));
    assert_eq!(resolve_volume(r, "/dev/ubi2_4").unwrap(), (2, 4));
    for bad in [
        "ubi0:nope",
        "ubi0_5",
        "/dev/mtd0",
        "ubi0",
        "ubiX_1",
        "ubi2:rootfs",
    ] {
        assert!(
            matches!(resolve_volume(r, bad), Err(UbiError::NotFound(_))),
            "{bad}"
        );
    }
}

#[test]
fn names_are_checked_before_the_kernel() {
    assert!(check_name("rootfs").is_ok());
    assert!(check_name("").is_err());
    assert!(check_name(&"x".repeat(128)).is_err());
    assert!(check_name(&"x".repeat(127)).is_ok());
    assert!(check_name("a\0b").is_err());
}

#[test]
fn volume_paths_follow_the_root() {
    assert_eq!(
        volume_node(Path::new("/x"), 1, 7),
        Path::new("/x/dev/ubi1_7")
    );
}

#[test]
fn attach_without_ubi_ctrl_reports_the_path() {
    let t = tempfile::tempdir().unwrap();
    let msg = attach(t.path(), 0, 0).unwrap_err().to_string();
    assert!(msg.contains("ubi_ctrl"), "{msg}");
}
