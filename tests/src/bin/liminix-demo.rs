//! A demo router on this machine: a Liminix-like device (chroot + real sshd on loopback) that was
//! flashed with generation A, receives update B (then reboots), update C with `--fast`, and rolls
//! back. Every command is printed with its output, as a user would see it. Run by scripts/demo.sh.

use std::path::Path;
use std::process::Output;

use liminix_tests::closure::ClosureSpec;
use liminix_tests::lab::{text, Lab, Pack};

fn show(cmd: &str, o: &Output) {
    println!("\n$ {cmd}");
    print!("{}", text(o));
    if !o.status.success() {
        println!("(exit status {})", o.status);
        std::process::exit(1);
    }
}

fn step(title: &str) {
    println!("\n=== {title} ===");
}

fn update(lab: &Lab, up: &Path, label: &str, args: &[&str]) {
    let o = lab.update(up, args);
    let shown = format!(
        "SSH_COMMAND=\"ssh -p {} …\" {label}/bin/update.sh {} {}",
        lab.sshd.port(),
        args.join(" "),
        lab.sshd.host()
    );
    show(&shown, &o);
}

fn main() {
    step("A demo router: a chroot with busybox and liminix-agent behind a real sshd on 127.0.0.1");
    let lab = Lab::new();
    println!("device root: {}", lab.device.root().display());
    let a = lab.generate(&ClosureSpec::small(2026));
    let b = lab.derive(&a, &["dhcpc-wan"], 0.1, 1);
    let c = lab.derive(&b, &["ntp"], 0.0, 2);

    step("Factory state: generation A flashed and booted");
    let up_a = lab.updater(&a, &Pack::default());
    let o = lab.update(&up_a, &["--no-reboot"]);
    assert!(o.status.success(), "{}", text(&o));
    lab.device.boot_as(&a.toplevel).expect("boot A");
    show("liminix-agent status", &lab.agent("status"));

    step("Update 1: B (dhcpc-wan reconfigured, 10% of packages rebuilt), then an orderly reboot");
    let up_b = lab.updater(&b, &Pack::default());
    update(&lab, &up_b, "result-B", &[]);
    println!(
        "device stand-in recorded: {:?}",
        lab.device.recorded_calls()
    );
    lab.device.clear_recorded_calls();
    lab.device.boot_as(&b.toplevel).expect("boot B");

    step("Update 2: C (ntp reconfigured) with --fast: only the changed services restart");
    let up_c = lab.updater(&c, &Pack::default());
    update(&lab, &up_c, "result-C", &["--fast"]);
    for call in lab.device.recorded_calls() {
        println!("device ran: {call}");
    }
    show("liminix-agent status", &lab.agent("status"));

    step("Rollback to the previous generation (B), atomically");
    show("liminix-agent rollback", &lab.agent("rollback"));
    show("liminix-agent status", &lab.agent("status"));
    show("ls -l /persist", &lab.sshd.ssh_run("ls -l /persist"));
    println!("\nDemo finished; the demo router is removed on exit.");
}
