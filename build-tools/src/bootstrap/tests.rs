use std::path::PathBuf;

use super::*;

/// The first 52 bytes of Debian's mipsel busybox-static, as the probe's `od` prints them.
const MIPSEL_BUSYBOX: &str = "7f454c460101010000000000000000000200080001000000\
    e005400034000000304824000710007034002000080028001f001e00";

fn probe_text(agents: &str, free_kib: &str, missing: &str) -> String {
    format!(
        "liminix-bootstrap 1\nmachine mips\nelf {MIPSEL_BUSYBOX}\nrun-free-blocks \n\
         run-free-kib {free_kib}\n\
         missing-tools {missing}\n{agents}probe-end\n"
    )
}

fn probe(agents: &str) -> Probe {
    let text = probe_text(agents, "65536", "");
    read_probe(&mut text.as_bytes()).unwrap().unwrap()
}

fn carried(cpu: Cpu, size: u64) -> Carried {
    Carried {
        cpu,
        path: PathBuf::from("/x"),
        size,
        sha256: "00".into(),
    }
}

fn version_line(slot: u8, version: &str, protocol: u32) -> String {
    format!(
        "agent-path {slot} /bin/liminix-agent\nagent-version {slot} \
         {{\"agent_version\":\"{version}\",\"protocol\":{protocol}}}\n"
    )
}

#[test]
fn the_probe_is_read() {
    let p = probe(&format!(
        "{}agent-path 2 /run/liminix/liminix-agent\nagent-version 2 \n",
        version_line(1, "0.0.1", 1)
    ));
    assert_eq!(p.machine, "mips");
    assert_eq!(p.cpu(), Some(Cpu::Mipsel));
    assert_eq!(p.run_free, Some(65536 * 1024));
    assert!(p.missing_tools.is_empty());
    assert_eq!(p.agents.len(), 2);
    assert_eq!(
        p.agents[0].version,
        Some(AgentVersion {
            agent_version: "0.0.1".into(),
            protocol: 1
        })
    );
    assert_eq!(p.agents[1].path, "/run/liminix/liminix-agent");
    assert_eq!(p.agents[1].version, None);
    assert!(p
        .describe_cpu()
        .contains("32-bit little-endian, e_machine 8"));
    // `stat -f` wins over `df` when both answer.
    let text = probe_text("", "1", "").replace("run-free-blocks ", "run-free-blocks 3 4096");
    let p = read_probe(&mut text.as_bytes()).unwrap().unwrap();
    assert_eq!(p.run_free, Some(3 * 4096));
    // Whatever a login shell prints instead of the greeting is refused, not guessed at.
    let e = read_probe(&mut "Welcome!\n".as_bytes()).unwrap_err();
    assert!(e.to_string().contains("POSIX sh"), "{e}");
    assert_eq!(
        read_probe(&mut "liminix-bootstrap 1\n".as_bytes()).unwrap(),
        None
    );
}

#[test]
fn the_version_rule() {
    let v = |version: &str, protocol| AgentVersion {
        agent_version: version.into(),
        protocol,
    };
    assert_eq!(judge(Some(&v(OURS, PROTOCOL))), Verdict::Same);
    assert_eq!(judge(Some(&v("999.0.0", PROTOCOL))), Verdict::Newer);
    assert_eq!(judge(Some(&v("0.0.0", PROTOCOL))), Verdict::Unfit);
    assert_eq!(judge(Some(&v("999.0.0", PROTOCOL + 1))), Verdict::Unfit);
    assert_eq!(judge(Some(&v("garbage", PROTOCOL))), Verdict::Unfit);
    assert_eq!(judge(None), Verdict::Unfit);
    assert_eq!(numbers("1.2.3-rc.1"), Some((1, 2, 3)));
    assert_eq!(numbers("1.2"), None);
}

#[test]
fn decisions() {
    let agents = [carried(Cpu::X86_64, 10), carried(Cpu::Mipsel, 10)];
    let same = probe(&version_line(1, OURS, PROTOCOL));
    assert!(matches!(
        decide(&same, &agents),
        Ok(Decision::Use {
            verdict: Verdict::Same,
            ..
        })
    ));
    let newer = probe(&version_line(1, "999.0.0", PROTOCOL));
    assert!(matches!(
        decide(&newer, &[]),
        Ok(Decision::Use {
            verdict: Verdict::Newer,
            ..
        })
    ));
    let older = probe(&version_line(1, "0.0.1", PROTOCOL));
    assert_eq!(decide(&older, &agents), Ok(Decision::Send(&agents[1])));
    // A second, fitting agent (an earlier update's, in /run) is used before sending.
    let both = probe(&format!(
        "{}{}",
        version_line(1, "0.0.1", PROTOCOL),
        version_line(2, OURS, PROTOCOL)
    ));
    assert!(matches!(
        decide(&both, &agents),
        Ok(Decision::Use {
            found: Found { slot: 2, .. },
            ..
        })
    ));
    let bare = probe("");
    assert_eq!(decide(&bare, &[]), Err(Refusal::NothingCarried));
    assert!(matches!(
        decide(&bare, &agents[..1]),
        Err(Refusal::NoAgentForCpu { .. })
    ));
    let big = [carried(Cpu::Mipsel, 65536 * 1024 + 1)];
    assert_eq!(
        decide(&bare, &big),
        Err(Refusal::NoRoom {
            need: 65536 * 1024 + 1,
            free: 65536 * 1024
        })
    );
    let text = probe_text("", "", "sha256sum ");
    let no_tools = read_probe(&mut text.as_bytes()).unwrap().unwrap();
    assert_eq!(
        decide(&no_tools, &agents),
        Err(Refusal::CannotReceive("it lacks sha256sum".into()))
    );
}
