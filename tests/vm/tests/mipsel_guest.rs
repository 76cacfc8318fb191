//! The MIPS little-endian flavour boots: Debian's 4kc-malta kernel under
//! `qemu-system-mipsel -M malta` (TCG), nandsim and UBI loaded from the fetched module tree
//! with modprobe, a command run, its output read back from the serial console.

use liminix_vm::VmBuilder;

#[test]
fn mipsel_guest_attaches_ubi_on_nandsim_and_runs_a_command() {
    let out = VmBuilder::mipsel()
        .modprobe(
            "nandsim",
            "first_id_byte=0x20 second_id_byte=0xaa third_id_byte=0x00 fourth_id_byte=0x15",
        )
        .modprobe("ubi", "mtd=0")
        .script(
            r#"echo "uname machine=$(uname -m)"
echo "mtd0 geometry=$(sed -n 's/^mtd0: \([0-9a-f]*\) \([0-9a-f]*\) .*/\1,\2/p' /proc/mtd)"
echo "ubi0 pebs=$(cat /sys/class/ubi/ubi0/total_eraseblocks)"
"#,
        )
        .timeout(300)
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    out.assert_success();
    assert_eq!(
        out.require_field("uname ", "machine"),
        "mips",
        "{}",
        out.serial
    );
    // 256 MiB of 128 KiB erase blocks
    assert_eq!(out.require_field("mtd0 ", "geometry"), "10000000,00020000");
    let pebs: u32 = out.require_field("ubi0 ", "pebs").parse().unwrap();
    assert_eq!(pebs, 2048, "{}", out.serial);
}
