//! The agent's A/B layout override (`/etc/liminix/ab.json`) for guests whose slots are
//! nandsim partitions 0–3 (kernel, rootfs of slot A, then of slot B).

/// A Zyxel-flow layout over nandsim partitions 0–3 (1 MiB kernels, 2 MiB raw rootfs
/// partitions) with the bootconfig on the MTD device named `bootconfig_mtd`.
pub fn zyxel_nandsim_ab_json(bootconfig_mtd: &str) -> String {
    let part = |i: u32| format!(r#"{{"kind":"mtd","name":"NAND simulator partition {i}"}}"#);
    let slot = |k: u32, u: u32| {
        format!(
            r#"{{"kernel":{},"kernel_max":1048576,"rootfs":{},"rootfs_max":2097152}}"#,
            part(k),
            part(u)
        )
    };
    format!(
        r#"{{"board":"zyxel-nwa50ax","slots":[{},{}],"flow":{{"kind":"zyxel","device":"mtd:{bootconfig_mtd}"}}}}"#,
        slot(0, 1),
        slot(2, 3)
    )
}
