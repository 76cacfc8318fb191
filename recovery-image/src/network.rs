//! The network the maintenance root brings up: the running system's addresses and routes, so
//! that `ssh root@router` reaches the same address afterwards.
//!
//! They are read from the output of `ip -o addr show` and `ip route show` (busybox's `ip`, which
//! every Liminix system has, or iproute2's: both print these lines alike). `/proc/net` is no
//! alternative: it lists IPv6 addresses and IPv4 routes but no IPv4 address at all, and asking
//! the kernel directly would mean netlink code for what one command already prints.
//!
//! Everything kept is checked against a strict alphabet, since it becomes lines of /init.

use std::process::Command;

use crate::RecoveryError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// (interface, address with prefix length), e.g. ("eth0", "10.0.2.15/24").
    pub addresses: Vec<(String, String)>,
    /// Arguments of `ip route add`, e.g. "default via 10.0.2.2 dev eth0".
    pub routes: Vec<String>,
    /// Bridges and their member interfaces (a router's LAN address sits on one), made again
    /// after a kexec; on the s6 path the kernel still has them.
    pub bridges: Vec<(String, Vec<String>)>,
    /// Interfaces that get their address by DHCP (a recovery stick on the LAN port).
    pub dhcp: Vec<String>,
}

/// Where the kernel lists network interfaces; a bridge has `bridge/` and `brif/` below its own.
pub const SYS_NET: &str = "/sys/class/net";

/// Flags `ip route show` prints that `ip route add` does not take back.
const STATE_WORDS: &[&str] = &[
    "linkdown",
    "dead",
    "offload",
    "trap",
    "rt_offload",
    "rt_trap",
];

impl Network {
    /// The running system's network, by running `ip`.
    pub fn capture() -> Result<Network, RecoveryError> {
        let addr = run(&["-o", "addr", "show"])?;
        let route = run(&["route", "show"])?;
        let mut net = Network::parse(&addr, &route)?;
        net.bridges = bridges(std::path::Path::new(SYS_NET))?;
        Ok(net)
    }

    /// Addresses from `ip -o addr show` and routes from `ip route show`. Left out: loopback,
    /// IPv6 link-local addresses (the kernel makes them again) and routes the kernel adds
    /// by itself for each address (`proto kernel`).
    pub fn parse(addr: &str, route: &str) -> Result<Network, RecoveryError> {
        let mut net = Network::default();
        for line in addr.lines() {
            if let Some((dev, cidr)) = address_line(line) {
                if dev == "lo" || cidr.starts_with("fe80:") {
                    continue;
                }
                net.add_address(dev, cidr)?;
            }
        }
        for line in route.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.is_empty() || words.windows(2).any(|w| w == ["proto", "kernel"]) {
                continue;
            }
            let kept: Vec<&str> = words
                .into_iter()
                .filter(|w| !STATE_WORDS.contains(w))
                .collect();
            net.add_route(&kept.join(" "))?;
        }
        Ok(net)
    }

    /// An address given by hand (`--address CIDR`), on `dev`.
    pub fn add_address(&mut self, dev: &str, cidr: &str) -> Result<(), RecoveryError> {
        check_name(dev)?;
        check_cidr(cidr)?;
        self.addresses.push((dev.to_string(), cidr.to_string()));
        Ok(())
    }

    /// A route given by hand (`--gateway IP` makes "default via IP").
    pub fn add_route(&mut self, route: &str) -> Result<(), RecoveryError> {
        let ok = route.split(' ').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:/-@".contains(&b))
        });
        match ok {
            true => {
                self.routes.push(route.to_string());
                Ok(())
            }
            false => Err(RecoveryError::Unsafe {
                what: "the route",
                value: route.to_string(),
            }),
        }
    }

    /// An interface whose address and default route come from a DHCP server (`--dhcp IF`).
    pub fn add_dhcp(&mut self, dev: &str) -> Result<(), RecoveryError> {
        check_name(dev)?;
        if !self.dhcp.iter().any(|d| d == dev) {
            self.dhcp.push(dev.to_string());
        }
        Ok(())
    }

    /// The interfaces that carry an address, each once, in order.
    pub fn interfaces(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for (dev, _) in &self.addresses {
            if !seen.contains(&dev.as_str()) {
                seen.push(dev);
            }
        }
        seen
    }
}

/// The bridges below `sys_net` (a `/sys/class/net`) with their members, sorted by name.
pub fn bridges(sys_net: &std::path::Path) -> Result<Vec<(String, Vec<String>)>, RecoveryError> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(sys_net) else {
        return Ok(found);
    };
    for e in entries.flatten() {
        let brif = e.path().join("brif");
        if !e.path().join("bridge").is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        check_name(&name)?;
        let mut members = Vec::new();
        for m in std::fs::read_dir(&brif).into_iter().flatten().flatten() {
            let member = m.file_name().to_string_lossy().into_owned();
            check_name(&member)?;
            members.push(member);
        }
        members.sort();
        found.push((name, members));
    }
    found.sort();
    Ok(found)
}

/// ("eth0", "10.0.2.15/24") from "2: eth0    inet 10.0.2.15/24 brd … scope global eth0\ …".
fn address_line(line: &str) -> Option<(&str, &str)> {
    let mut words = line.split_whitespace();
    words.next()?;
    let dev = words.next()?.split('@').next()?;
    let family = words.next()?;
    let cidr = words.next()?;
    matches!(family, "inet" | "inet6").then_some((dev, cidr))
}

fn check_name(dev: &str) -> Result<(), RecoveryError> {
    let ok = !dev.is_empty()
        && dev.len() <= 15
        && dev
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match ok {
        true => Ok(()),
        false => Err(RecoveryError::Unsafe {
            what: "the interface name",
            value: dev.to_string(),
        }),
    }
}

fn check_cidr(cidr: &str) -> Result<(), RecoveryError> {
    let bad = || RecoveryError::BadNetwork {
        value: cidr.to_string(),
        expected: "an address with its prefix length (10.0.0.1/24, fd00::1/64)",
    };
    let (ip, len) = cidr.split_once('/').ok_or_else(bad)?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    match ip.parse::<std::net::IpAddr>().map_err(|_| bad())? {
        std::net::IpAddr::V4(_) if len <= 32 => Ok(()),
        std::net::IpAddr::V6(_) if len <= 128 => Ok(()),
        _ => Err(bad()),
    }
}

/// Checks a gateway given by hand.
pub fn check_ip(ip: &str) -> Result<(), RecoveryError> {
    ip.parse::<std::net::IpAddr>()
        .map(|_| ())
        .map_err(|_| RecoveryError::BadNetwork {
            value: ip.to_string(),
            expected: "an IP address",
        })
}

fn run(args: &[&str]) -> Result<String, RecoveryError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| RecoveryError::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(RecoveryError::Command {
            command,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| RecoveryError::Command {
        command,
        detail: "the output is not UTF-8".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet6 fec0::5054:ff:fe12:3456/64 scope site dynamic \\       valid_lft 86387sec preferred_lft 14387sec
2: eth0    inet6 fe80::5054:ff:fe12:3456/64 scope link \\       valid_lft forever preferred_lft forever
3: eth0.2@eth0    inet 192.168.8.1/24 scope global eth0.2\\       valid_lft forever preferred_lft forever
";
    const ROUTE: &str = "\
default via 10.0.2.2 dev eth0 linkdown
10.0.2.0/24 dev eth0 proto kernel scope link src 10.0.2.15
172.16.0.0/12 via 10.0.2.3 dev eth0 metric 5
";

    #[test]
    fn addresses_and_routes_are_kept_as_ip_adds_them() {
        let net = Network::parse(ADDR, ROUTE).unwrap();
        assert_eq!(
            net.addresses,
            [
                ("eth0".into(), "10.0.2.15/24".into()),
                ("eth0".into(), "fec0::5054:ff:fe12:3456/64".into()),
                ("eth0.2".into(), "192.168.8.1/24".into()),
            ]
        );
        assert_eq!(
            net.routes,
            [
                "default via 10.0.2.2 dev eth0",
                "172.16.0.0/12 via 10.0.2.3 dev eth0 metric 5"
            ]
        );
        assert_eq!(net.interfaces(), ["eth0", "eth0.2"]);
    }

    #[test]
    fn what_would_break_the_script_is_refused() {
        let e = Network::parse("2: e;reboot    inet 10.0.0.1/24 scope global\n", "").unwrap_err();
        assert!(matches!(e, RecoveryError::Unsafe { .. }), "{e}");
        let e = Network::parse("", "default via $(reboot) dev eth0\n").unwrap_err();
        assert!(matches!(e, RecoveryError::Unsafe { .. }), "{e}");
        let mut net = Network::default();
        assert!(net.add_address("eth0", "10.0.0.1/33").is_err());
        assert!(net.add_address("eth0", "10.0.0.1").is_err());
        assert!(check_ip("10.0.0.256").is_err());
    }

    #[test]
    fn bridges_and_members_come_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "br-lan/bridge",
            "br-lan/brif/lan1",
            "br-lan/brif/lan0",
            "eth0/device",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        assert_eq!(
            bridges(dir.path()).unwrap(),
            [(
                "br-lan".to_string(),
                vec!["lan0".to_string(), "lan1".to_string()]
            )]
        );
        std::fs::create_dir_all(dir.path().join("br-lan/brif/x;y")).unwrap();
        assert!(bridges(dir.path()).is_err());
    }

    /// The oracle is this machine's own `ip`: what it prints must parse, and every global
    /// IPv4 address it lists must be kept.
    #[test]
    fn this_machines_ip_output_parses() {
        let net = Network::capture().expect("ip (Debian package iproute2)");
        let out = Command::new("ip")
            .args(["-4", "-o", "addr", "show", "scope", "global"])
            .output()
            .unwrap();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let cidr = line.split_whitespace().nth(3).unwrap();
            assert!(
                net.addresses.iter().any(|(_, c)| c == cidr),
                "{cidr} missing: {net:?}"
            );
        }
    }
}
