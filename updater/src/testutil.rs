//! Fixtures shared by the agent's unit tests.

use crate::root::DeviceRoot;

/// A sysfs tree below `root` with the given MTD partitions and UBI devices (ubi N on mtd M).
pub fn fake_sysfs(root: &DeviceRoot, mtd: &[&str], ubi: &[(u32, u32)]) {
    for (i, name) in mtd.iter().enumerate() {
        let d = root.join(&format!("/sys/class/mtd/mtd{i}"));
        std::fs::create_dir_all(&d).unwrap();
        for (k, v) in [
            ("name", *name),
            ("type", "nand"),
            ("size", "8388608"),
            ("erasesize", "131072"),
            ("writesize", "2048"),
            ("oobsize", "64"),
        ] {
            std::fs::write(d.join(k), format!("{v}\n")).unwrap();
        }
    }
    for (num, mtd) in ubi {
        let d = root.join(&format!("/sys/class/ubi/ubi{num}"));
        std::fs::create_dir_all(&d).unwrap();
        let mtd = mtd.to_string();
        for (k, v) in [
            ("mtd_num", mtd.as_str()),
            ("avail_eraseblocks", "100"),
            ("eraseblock_size", "126976"),
            ("total_eraseblocks", "256"),
            ("min_io_size", "2048"),
            ("max_vol_count", "128"),
            ("volumes_count", "1"),
            ("bad_peb_count", "0"),
        ] {
            std::fs::write(d.join(k), format!("{v}\n")).unwrap();
        }
    }
}

/// A volume `ubiN_ID` called `name` in the fake sysfs of [`fake_sysfs`], with its
/// character device node (a plain file).
pub fn fake_ubi_volume(root: &DeviceRoot, num: u32, id: u32, name: &str) {
    let d = root.join(&format!("/sys/class/ubi/ubi{num}/ubi{num}_{id}"));
    std::fs::create_dir_all(&d).unwrap();
    for (k, v) in [
        ("name", name),
        ("type", "dynamic"),
        ("reserved_ebs", "20"),
        ("usable_eb_size", "126976"),
        ("data_bytes", "2539520"),
        ("corrupted", "0"),
        ("upd_marker", "0"),
    ] {
        std::fs::write(d.join(k), format!("{v}\n")).unwrap();
    }
    std::fs::create_dir_all(root.join("/dev")).unwrap();
    std::fs::write(root.join(&format!("/dev/ubi{num}_{id}")), b"").unwrap();
}
