//! `liminix-agent kexec` on the Malta guest, on two kernels.
//!
//! A uniprocessor Malta kernel built from Debian's source (`liminix_vm::malta`): the static
//! mipsel agent lays out the same vmlinux, a new initramfs and its boot-argument stub for
//! kexec_load, the second kernel boots, and its userland prints the command line it got — the
//! agent's, with the initramfs words the stub added — and the RAM size the stub passed. Debian's own 4kc-malta kernel is an SMP
//! build and refuses every kexec image in machine_kexec_prepare (docs/kexec.md): what a user of
//! that kernel sees is asserted too. Real: QEMU (TCG), the kernels' kexec_load, Debian's kprobes.

mod kexec_common;

use kexec_common::{json_between, second_cmdline, second_initramfs, SECOND};
use liminix_vm::debian::{assets, Arch};
use liminix_vm::malta::uniprocessor_kernel;
use liminix_vm::{built_agent, VmBuilder};

const NEW_CMDLINE: &str = "console=ttyS0 panic=-1 liminix.test=kexec-mips-marker";

#[test]
fn mipsel_kexec_load_boots_the_vmlinux_with_a_new_initramfs_and_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = uniprocessor_kernel().unwrap_or_else(|e| panic!("{e}"));
    let debian = assets(Arch::Mipsel).unwrap_or_else(|e| panic!("{e}"));
    let agent = built_agent("mipsel-unknown-linux-gnu").unwrap_or_else(|e| panic!("{e}"));
    let out = VmBuilder::mipsel()
        .kernel(kernel.clone())
        .memory_mb(256)
        .file(agent, "/bin/liminix-agent")
        .file(&kernel.image, "/k/vmlinux")
        .file(second_initramfs(&debian.busybox, dir.path()), "/k/second.cpio")
        .timeout(600)
        .script(&format!(
            "echo \"FIRST cmdline=[$(cat /proc/cmdline)] cpus=$(grep -c ^processor /proc/cpuinfo)\"\n\
             grep 'System RAM' /proc/iomem\n\
             echo KEXEC-BEGIN\n\
             liminix-agent --json kexec --kernel /k/vmlinux --initrd /k/second.cpio --command-line '{NEW_CMDLINE}'\n\
             echo KEXEC-RETURNED\n"
        ))
        .run_until(SECOND)
        .unwrap_or_else(|e| panic!("{e}"));
    let report = json_between(&out, "KEXEC-BEGIN", "KEXEC-RETURNED");
    assert_eq!(report["method"], "kexec_load", "{report}");
    assert_eq!(report["format"], "ELF", "{report}");
    let segments = report["segments"].as_array().unwrap();
    let what: Vec<&str> = segments
        .iter()
        .map(|s| s["what"].as_str().unwrap())
        .collect();
    assert_eq!(what.last(), Some(&"boot arguments"), "{report}");
    assert!(what.contains(&"initramfs"), "{report}");
    let stub = segments.last().unwrap();
    assert_eq!(
        report["entry"], stub["address"],
        "the stub is the entry: {report}"
    );
    let initramfs = segments.iter().find(|s| s["what"] == "initramfs").unwrap();
    let start = u64::from_str_radix(
        initramfs["address"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let expected = format!(
        "{NEW_CMDLINE} rd_start={:#x} rd_size={}",
        start | 0x8000_0000,
        initramfs["bytes"]
    );
    assert_eq!(second_cmdline(&out), expected, "{}", out.serial);
    // The memsize the stub passed: the second kernel sees the guest's 256 MiB, not Malta's
    // 32 MiB default for a firmware that names none.
    let second = out.serial.split("KEXEC-BEGIN").nth(1).unwrap_or_default();
    assert!(
        second
            .lines()
            .any(|l| l.starts_with("Memory: ") && l.contains("/262144K available")),
        "{}",
        out.serial
    );
}

#[test]
fn debian_smp_malta_kernel_refuses_kexec_in_machine_kexec_prepare() {
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
    // -EINVAL as a 32-bit register: machine_kexec_prepare ran, so the generic checks of the
    // segments before it passed.
    let probe = line("probe:");
    assert!(probe.ends_with("ret=0xffffffea"), "{probe}\n{}", out.serial);
}
