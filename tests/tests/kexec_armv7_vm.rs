//! `liminix-agent kexec` on ARMv7: Debian's armmp zImage booted directly on QEMU's `virt`
//! (QEMU writes the device tree, the kernel exposes it as /sys/firmware/fdt); the static ARMv7
//! agent lays out zImage, a new initramfs and the device tree with a new /chosen for
//! kexec_load, and the second kernel's userland prints the command line it got. Real: QEMU
//! (TCG), Debian's kernel and its kexec_load, the device tree QEMU made.

mod kexec_common;

use kexec_common::{json_between, second_cmdline, second_initramfs, SECOND};
use liminix_vm::build::armv7_agent_with_ab_apply;
use liminix_vm::debian::{assets, Arch};
use liminix_vm::VmBuilder;

const NEW_CMDLINE: &str = "console=ttyAMA0 panic=-1 liminix.test=kexec-arm-marker";

#[test]
fn armv7_kexec_load_boots_the_zimage_with_a_new_initramfs_and_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let debian = assets(Arch::Armhf).unwrap_or_else(|e| panic!("{e}"));
    let (agent, _) = armv7_agent_with_ab_apply().unwrap_or_else(|e| panic!("{e}"));
    let out = VmBuilder::armv7()
        .file(agent, "/bin/liminix-agent")
        .file(&debian.kernel.image, "/k/zImage")
        .file(second_initramfs(&debian.busybox, dir.path()), "/k/second.cpio")
        .timeout(600)
        .script(&format!(
            "echo \"FIRST cmdline=[$(cat /proc/cmdline)]\"\n\
             grep 'System RAM' /proc/iomem\n\
             echo KEXEC-BEGIN\n\
             liminix-agent --json kexec --kernel /k/zImage --initrd /k/second.cpio --command-line '{NEW_CMDLINE}'\n\
             echo KEXEC-RETURNED\n"
        ))
        .run_until(SECOND)
        .unwrap_or_else(|e| panic!("{e}"));
    let report = json_between(&out, "KEXEC-BEGIN", "KEXEC-RETURNED");
    assert_eq!(report["method"], "kexec_load", "{report}");
    assert_eq!(report["format"], "zImage", "{report}");
    assert_eq!(report["entry"], "0x40008000", "{report}");
    let what: Vec<&str> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["what"].as_str().unwrap())
        .collect();
    assert_eq!(what, ["zImage", "initramfs", "device tree"], "{report}");
    assert_eq!(second_cmdline(&out), NEW_CMDLINE);
}
