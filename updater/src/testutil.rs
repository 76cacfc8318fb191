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
