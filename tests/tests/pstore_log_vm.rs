//! The agent's step log survives a crash: boot 1 writes flash with `liminix-agent flashcp`,
//! which logs its steps to the kernel log (Debian's kernel has no `/dev/pmsg0`), then the
//! kernel panics (`echo c > /proc/sysrq-trigger`). Boot 2 runs `liminix-agent boot-log`, which
//! mounts pstore itself and moves the records to /run/log/previous-boot, and `status --json`,
//! which must report the panic with the agent's last step.
//!
//! One QEMU x86_64 process, two boots of Debian's kernel (`allow_reboot`: the panic resets
//! the guest, RAM is kept). Real: the kernel, ramoops/pstore in 1 MiB reserved with `memmap=`
//! (as in `ab_pstore_vm`), mtdram, the static agent. The boots are told apart by one byte on a
//! virtio disk.
//!
//! Oracles: the kernel's own `dmesg` of boot 1 (the agent's last line must be the one
//! `status` reports), its panic message on the console, the files in /run/log/previous-boot
//! against what pstore held, and pstore left empty.

use liminix_tests::data::pattern;
use liminix_vm::{build_static, StaticTarget, VmBuilder};

const RAMOOPS: &str = "mem_address=0x10000000 mem_size=0x100000 record_size=0x20000";
const MEMMAP: &str = "memmap=1M$0x10000000";

const SCRIPT: &str = r#"
if [ "$(head -c1 /dev/vda)" != 1 ]; then
  printf 1 | dd of=/dev/vda conv=fsync 2>/dev/null
  echo "boot 1 pstore=$(ls /sys/fs/pstore | wc -l)"
  liminix-agent flashcp /img/fw "mtd:mtdram test device"
  dmesg | grep 'liminix-agent: ' | sed 's/^.*liminix-agent: /dmesg-says: /'
  echo c > /proc/sysrq-trigger
  sleep 5
  exit 10
fi
echo "boot 2 mounted=$(grep -c pstore /proc/mounts || true)"
json boot-log liminix-agent --json boot-log
json status liminix-agent --json status
liminix-agent status | sed 's/^/status-says: /'
echo "saved $(ls /run/log/previous-boot | tr '\n' ' ')"
echo "left count=$(ls /sys/fs/pstore | wc -l)"
cat /run/log/previous-boot/dmesg-ramoops-0 | grep -c 'liminix-agent: ' | sed 's/^/saved-agent-lines count=/'
"#;

#[test]
fn a_crash_is_reported_at_the_next_boot_with_the_agents_last_step() {
    let agent = build_static("liminix-agent", StaticTarget::Bin("liminix-agent")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("fw");
    std::fs::write(&fw, pattern(9, 300_000)).unwrap();
    let state = dir.path().join("state.img");
    std::fs::write(&state, vec![0u8; 4096]).unwrap();
    let out = VmBuilder::new()
        .modprobe("ramoops", RAMOOPS)
        .modprobe("mtdram", "total_size=1024 erase_size=64")
        .disk(&state)
        .file(&agent, "/bin/liminix-agent")
        .file(&fw, "/img/fw")
        .append(MEMMAP)
        .allow_reboot()
        .timeout(240)
        .script(SCRIPT)
        .run()
        .unwrap();
    if std::env::var_os("LIMINIX_VM_SERIAL").is_some() {
        eprintln!("{}", out.serial);
    }
    out.assert_success();
    let s = &out.serial;
    assert!(s.contains("boot 1 pstore=0"), "{s}");
    assert!(
        s.contains("Kernel panic - not syncing: sysrq triggered crash"),
        "{s}"
    );
    // What the kernel itself logged of the agent in boot 1.
    let said = out.lines_starting("dmesg-says: ");
    let last = said
        .last()
        .unwrap_or_else(|| panic!("the agent logged nothing; serial:\n{s}"))
        .trim_start_matches("dmesg-says: ");
    assert!(
        last.starts_with("flashcp: mtd:mtdram test device verified"),
        "{said:?}"
    );
    assert_eq!(said.len(), 2, "{said:?}");

    // Boot 2: pstore was not mounted; boot-log mounted it and moved its records.
    assert!(s.contains("boot 2 mounted=0"), "{s}");
    let collected = &out.json("boot-log")["collected"];
    assert_eq!(collected["mounted"], true, "{collected}");
    assert_eq!(collected["dir"], "/run/log/previous-boot", "{collected}");
    let moved: Vec<&str> = collected["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(moved.contains(&"dmesg-ramoops-0"), "{moved:?}");
    assert!(
        out.lines_starting("saved ")[0]
            .split_whitespace()
            .skip(1)
            .eq(moved.iter().copied()),
        "{s}"
    );
    assert_eq!(out.require_field("left", "count"), "0");
    assert_eq!(out.require_field("saved-agent-lines", "count"), "2");

    let prev = &out.json("status")["previous_boot"];
    assert_eq!(prev["outcome"], "panic", "{prev:#}");
    assert_eq!(
        prev["panic"], "Kernel panic - not syncing: sysrq triggered crash",
        "{prev:#}"
    );
    assert_eq!(prev["agent_last"], last, "{prev:#}");
    let lines = prev["last_lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "{prev:#}");
    assert!(
        out.lines_starting("status-says: ")
            .iter()
            .any(|l| l.contains("previous boot: panic")),
        "{s}"
    );
}
