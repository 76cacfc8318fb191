//! `liminix-agent kexec` on x86_64: the static agent hands Debian's kernel and a new
//! initramfs to the running kernel (kexec_file_load) with a new command line, and the second
//! boot's userland prints the command line it got. Also the kernel's refusals, in the agent's
//! words. Real: QEMU (TCG), the kernel, its kexec; nothing is played.

mod kexec_common;

use kexec_common::{json_between, second_cmdline, second_initramfs, SECOND};
use liminix_vm::kernel::find_kernel;
use liminix_vm::{build_static, require, StaticTarget, VmBuilder};

const NEW_CMDLINE: &str = "console=ttyS0 panic=-1 liminix.test=kexec-x86-marker";

fn guest(dir: &std::path::Path) -> VmBuilder {
    require("/bin/busybox", "busybox-static").unwrap_or_else(|e| panic!("{e}"));
    let agent = build_static("liminix-agent", StaticTarget::Bin("liminix-agent"))
        .unwrap_or_else(|e| panic!("{e}"));
    let kernel = find_kernel().unwrap_or_else(|e| panic!("{e}"));
    VmBuilder::new()
        .file(agent, "/bin/liminix-agent")
        .file(&kernel.image, "/k/vmlinuz")
        .file(
            second_initramfs("/bin/busybox".as_ref(), dir),
            "/k/second.cpio",
        )
        .timeout(300)
}

#[test]
fn x86_64_kexec_boots_the_kernel_with_a_new_initramfs_and_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = guest(dir.path())
        .script(&format!(
            "echo \"FIRST cmdline=[$(cat /proc/cmdline)]\"\n\
             echo KEXEC-BEGIN\n\
             liminix-agent --json kexec --kernel /k/vmlinuz --initrd /k/second.cpio --command-line '{NEW_CMDLINE}'\n\
             echo KEXEC-RETURNED\n"
        ))
        .run_until(SECOND)
        .unwrap_or_else(|e| panic!("{e}"));
    let first = out.require_field("FIRST", "cmdline").to_owned();
    assert!(!first.contains("kexec-x86-marker"), "{first}");
    let report = json_between(&out, "KEXEC-BEGIN", "KEXEC-RETURNED");
    assert_eq!(report["method"], "kexec_file_load", "{report}");
    assert_eq!(report["format"], "bzImage", "{report}");
    assert_eq!(report["command_line"], NEW_CMDLINE, "{report}");
    assert!(!out.serial.contains("KEXEC-RETURNED"), "{}", out.serial);
    // The second kernel printed its banner again before its userland ran.
    assert!(
        out.serial.matches("Linux version").count() >= 1,
        "{}",
        out.serial
    );
    assert_eq!(second_cmdline(&out), NEW_CMDLINE);
}

#[test]
fn x86_64_kexec_load_only_unload_and_the_kernels_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let out = guest(dir.path())
        .script(
            "liminix-agent kexec --kernel /k/vmlinuz --initrd /k/second.cpio --append 'extra=1' --load-only\n\
             echo \"loaded=$(cat /sys/kernel/kexec_loaded)\"\n\
             liminix-agent kexec --unload\n\
             echo \"unloaded=$(cat /sys/kernel/kexec_loaded)\"\n\
             rc=0; liminix-agent kexec 2>/tmp/e || rc=$?; echo \"nothing rc=$rc $(tr '\\n' ' ' < /tmp/e)\"\n\
             rc=0; liminix-agent kexec --kernel /k/second.cpio --load-only 2>/tmp/e || rc=$?; echo \"garbage rc=$rc $(tr '\\n' ' ' < /tmp/e)\"\n\
             echo 1 > /proc/sys/kernel/kexec_load_disabled\n\
             rc=0; liminix-agent kexec --kernel /k/vmlinuz --load-only 2>/tmp/e || rc=$?; echo \"disabled rc=$rc $(tr '\\n' ' ' < /tmp/e)\"\n",
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
    assert_eq!(line("loaded="), "loaded=1");
    assert_eq!(line("unloaded="), "unloaded=0");
    let nothing = line("nothing ");
    assert!(
        nothing.starts_with("nothing rc=7 ") && nothing.contains("no kernel is loaded"),
        "{nothing}"
    );
    let garbage = line("garbage ");
    assert!(
        garbage.starts_with("garbage rc=2 ") && garbage.contains("none this loader knows"),
        "{garbage}"
    );
    let disabled = line("disabled ");
    assert!(
        disabled.starts_with("disabled rc=1 ")
            && disabled.contains("kexec is not allowed")
            && disabled.contains("kexec_load_disabled"),
        "{disabled}"
    );
}
