//! `liminix-agent kexec` on the Malta guest: the static mipsel agent lays out Debian's
//! 4kc-malta ELF vmlinuz (and an initramfs and a device tree carrying the command line) for
//! kexec_load. That kernel refuses every kexec image: it is built with CONFIG_SMP, and Malta's
//! SMP operations have no `kexec_nonboot_cpu`, so machine_kexec_prepare answers EINVAL
//! (docs/kexec.md). The test asserts exactly that: a return probe on machine_kexec_prepare
//! shows it ran (so the generic segment checks before it passed) and returned -EINVAL, and the
//! agent says so in its words. Real: QEMU (TCG), Debian's kernel, its kprobes.

mod kexec_common;

use kexec_common::second_initramfs;
use liminix_vm::debian::{assets, Arch};
use liminix_vm::{built_agent, VmBuilder};

#[test]
fn mipsel_malta_kernel_refuses_kexec_in_machine_kexec_prepare() {
    let dir = tempfile::tempdir().unwrap();
    let debian = assets(Arch::Mipsel).unwrap_or_else(|e| panic!("{e}"));
    let agent = built_agent("mipsel-unknown-linux-gnu").unwrap_or_else(|e| panic!("{e}"));
    let out = VmBuilder::mipsel()
        .file(agent, "/bin/liminix-agent")
        .file(&debian.kernel.image, "/k/vmlinuz")
        .file(second_initramfs(&debian.busybox, dir.path()), "/k/second.cpio")
        .timeout(600)
        .script(
            "mount -t tracefs nodev /sys/kernel/tracing\n\
             cd /sys/kernel/tracing\n\
             echo 'r:kexecprep machine_kexec_prepare ret=$retval' > kprobe_events\n\
             echo 1 > events/kprobes/kexecprep/enable\n\
             cd /tmp\n\
             echo \"smp: $(grep -c ^processor /proc/cpuinfo) cpu(s), fdt=$(test -e /sys/firmware/fdt && echo yes || echo no)\"\n\
             rc=0; liminix-agent kexec --kernel /k/vmlinuz --initrd /k/second.cpio --command-line 'console=ttyS0 m=1' 2>/tmp/e || rc=$?\n\
             echo \"kexec rc=$rc $(cat /tmp/e | tr '\\n' ' ')\"\n\
             echo \"probe: $(grep -o 'kexecprep.*ret=0x[0-9a-f]*' /sys/kernel/tracing/trace | tail -1)\"\n",
        )
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    out.assert_success();
    let line = |tag: &str| {
        out.lines_starting(tag)
            .first()
            .map(|l| l.to_string())
            .unwrap_or_else(|| panic!("no {tag}; {}", out.serial))
    };
    let kexec = line("kexec rc=");
    assert!(
        kexec.starts_with("kexec rc=1 ")
            && kexec.contains("kexec_load:")
            && kexec.contains("kexec_nonboot_cpu")
            && kexec.contains("(EINVAL)"),
        "{kexec}\n{}",
        out.serial
    );
    // -EINVAL as a 32-bit register.
    let probe = line("probe:");
    assert!(probe.ends_with("ret=0xffffffea"), "{probe}\n{}", out.serial);
}
