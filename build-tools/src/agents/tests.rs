use super::*;

/// A 52-byte ELF header with the fields [`Elf::parse`] reads.
fn header(class64: bool, little: bool, machine: u16, flags: u32) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LEN];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = if class64 { 2 } else { 1 };
    h[5] = if little { 1 } else { 2 };
    let m = if little {
        machine.to_le_bytes()
    } else {
        machine.to_be_bytes()
    };
    h[18..20].copy_from_slice(&m);
    let f = if little {
        flags.to_le_bytes()
    } else {
        flags.to_be_bytes()
    };
    let at = if class64 { 48 } else { 36 };
    h[at..at + 4].copy_from_slice(&f);
    h
}

fn cpu_of(h: &[u8]) -> Option<Cpu> {
    Elf::parse(h).unwrap().cpu()
}

#[test]
fn the_elf_header_names_the_cpu() {
    assert_eq!(cpu_of(&header(true, true, 62, 0)), Some(Cpu::X86_64));
    assert_eq!(cpu_of(&header(true, true, 183, 0)), Some(Cpu::Aarch64));
    assert_eq!(
        cpu_of(&header(false, true, 40, 0x0500_0400)),
        Some(Cpu::Armv7)
    );
    assert_eq!(
        cpu_of(&header(false, true, 8, 0x7000_1007)),
        Some(Cpu::Mipsel)
    );
    assert_eq!(
        cpu_of(&header(false, false, 8, 0x7000_1007)),
        Some(Cpu::Mips)
    );
    // Soft-float ARM, 32-bit x86, 64-bit MIPS and RISC-V have no agent.
    assert_eq!(cpu_of(&header(false, true, 40, 0x0500_0200)), None);
    assert_eq!(cpu_of(&header(false, true, 3, 0)), None);
    assert_eq!(cpu_of(&header(true, false, 8, 0)), None);
    assert_eq!(cpu_of(&header(true, true, 243, 0)), None);
    let e = Elf::parse(&header(false, false, 8, 0x7000_1007)).unwrap();
    assert_eq!(
        e.describe(),
        "32-bit big-endian, e_machine 8, e_flags 0x70001007"
    );
    assert_eq!(Elf::parse(b"#!/bin/sh\n"), None);
    let mut not_elf = header(false, true, 8, 0);
    not_elf[0] = b'#';
    assert_eq!(Elf::parse(&not_elf), None);
}

#[test]
fn the_device_cpu_needs_the_header_where_uname_is_ambiguous() {
    let mipsel = Elf::parse(&header(false, true, 8, 0x7000_1007)).unwrap();
    let armhf = Elf::parse(&header(false, true, 40, 0x0500_0400)).unwrap();
    assert_eq!(device_cpu("mips", Some(&mipsel)), Some(Cpu::Mipsel));
    assert_eq!(device_cpu("armv7l", Some(&armhf)), Some(Cpu::Armv7));
    // An ARMv6 core cannot run the ARMv7 agent, whatever float ABI its userland uses.
    assert_eq!(device_cpu("armv6l", Some(&armhf)), None);
    assert_eq!(device_cpu("x86_64", None), Some(Cpu::X86_64));
    assert_eq!(device_cpu("aarch64", None), Some(Cpu::Aarch64));
    assert_eq!(device_cpu("mips", None), None);
    let riscv = Elf::parse(&header(true, true, 243, 0)).unwrap();
    assert_eq!(device_cpu("x86_64", Some(&riscv)), None);
}

#[test]
fn cpu_lists_parse() {
    assert_eq!(parse_cpus("all").unwrap(), Cpu::ALL.to_vec());
    assert_eq!(
        parse_cpus("mipsel, mips,mipsel").unwrap(),
        vec![Cpu::Mipsel, Cpu::Mips]
    );
    let e = parse_cpus("x86_64,sparc").unwrap_err();
    assert!(e.to_string().contains("\"sparc\""), "{e}");
}

fn fake_build(dir: &Path, cpu: Cpu, h: &[u8]) {
    let d = dir.join(cpu.triple());
    fs::create_dir_all(&d).unwrap();
    let mut bytes = h.to_vec();
    bytes.extend_from_slice(b"rest of the executable");
    fs::write(d.join(AGENT_FILE), bytes).unwrap();
}

#[test]
fn install_copies_checked_agents_with_their_hashes() {
    let t = tempfile::tempdir().unwrap();
    let (from, to) = (t.path().join("from"), t.path().join("to"));
    fake_build(&from, Cpu::Mipsel, &header(false, true, 8, 0));
    fake_build(&from, Cpu::Mips, &header(false, true, 8, 0));
    let e = install(&from, &to, &[Cpu::Mipsel, Cpu::Aarch64]).unwrap_err();
    assert!(
        matches!(
            e,
            AgentsError::Missing {
                cpu: Cpu::Aarch64,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("scripts/build-agents.sh"), "{e}");
    // A little-endian build filed as big-endian is caught.
    let e = install(&from, &to, &[Cpu::Mips]).unwrap_err();
    assert!(
        matches!(e, AgentsError::WrongCpu { cpu: Cpu::Mips, .. }),
        "{e}"
    );
    assert!(
        !to.exists(),
        "nothing is copied unless every agent is there"
    );

    let got = install(&from, &to, &[Cpu::Mipsel]).unwrap();
    assert_eq!(got.len(), 1);
    let sha = fs::read_to_string(to.join(Cpu::Mipsel.triple()).join(SHA_FILE)).unwrap();
    assert_eq!(sha, format!("{}  liminix-agent\n", got[0].sha256));
    assert_eq!(carried(&to).unwrap(), got);

    fs::write(&got[0].path, b"tampered").unwrap();
    let e = carried(&to).unwrap_err();
    assert!(matches!(e, AgentsError::Hash { .. }), "{e}");
}
