//! The agents `scripts/build-agents.sh` leaves for every device CPU (scripts/test.sh runs it
//! before `cargo test`): each is a static executable of the right architecture and byte
//! order, and starts under user-mode QEMU (native on x86_64).

use std::path::PathBuf;
use std::process::Command;

use liminix_vm::{built_agent, require_program};

struct Cpu {
    triple: &'static str,
    /// What `file` says about the architecture and byte order.
    file_says: &'static [&'static str],
    /// The user-mode emulator; None runs it natively.
    qemu: Option<&'static str>,
}

const CPUS: [Cpu; 5] = [
    Cpu {
        triple: "x86_64-unknown-linux-musl",
        file_says: &["ELF 64-bit LSB", "x86-64"],
        qemu: None,
    },
    Cpu {
        triple: "aarch64-unknown-linux-musl",
        file_says: &["ELF 64-bit LSB", "ARM aarch64"],
        qemu: Some("qemu-aarch64-static"),
    },
    Cpu {
        triple: "armv7-unknown-linux-gnueabihf",
        file_says: &["ELF 32-bit LSB", "ARM, EABI5"],
        qemu: Some("qemu-arm-static"),
    },
    Cpu {
        triple: "mipsel-unknown-linux-gnu",
        file_says: &["ELF 32-bit LSB", "MIPS, MIPS32 rel2"],
        qemu: Some("qemu-mipsel-static"),
    },
    Cpu {
        triple: "mips-unknown-linux-gnu",
        file_says: &["ELF 32-bit MSB", "MIPS, MIPS32 rel2"],
        qemu: Some("qemu-mips-static"),
    },
];

fn file_output(path: &PathBuf) -> String {
    require_program("file", "file").unwrap();
    let out = Command::new("file").arg("-L").arg(path).output().unwrap();
    assert!(out.status.success(), "file {}", path.display());
    String::from_utf8(out.stdout).unwrap()
}

fn help_output(cpu: &Cpu, agent: &PathBuf) -> String {
    let mut cmd = match cpu.qemu {
        Some(qemu) => {
            require_program(qemu, "qemu-user-static").unwrap();
            let mut c = Command::new(qemu);
            c.arg(agent);
            c
        }
        None => Command::new(agent),
    };
    let out = cmd.arg("--help").output().unwrap();
    assert!(out.status.success(), "{}: --help failed", cpu.triple);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_cpu_has_a_static_agent_that_starts() {
    for cpu in &CPUS {
        let agent = built_agent(cpu.triple).unwrap_or_else(|e| panic!("{e}"));
        let desc = file_output(&agent);
        for word in cpu.file_says {
            assert!(desc.contains(word), "{}: {desc}", cpu.triple);
        }
        assert!(
            desc.contains("statically linked") || desc.contains("static-pie linked"),
            "{}: {desc}",
            cpu.triple
        );
        assert!(desc.contains("stripped") && !desc.contains("not stripped"));
        let help = help_output(cpu, &agent);
        assert!(
            help.contains("Installs signed Liminix bundles on this device"),
            "{}: {help}",
            cpu.triple
        );
    }
}
