//! Names, shapes and relative sizes of the packages a Liminix router closure
//! is made of (versions as in nixpkgs/Liminix around 2024–2025).

/// What a package's store path looks like inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// `lib/libNAME.so.V` plus a relative `lib/libNAME.so` symlink.
    Library,
    /// `bin/NAME` executables, maybe a library too.
    Program,
    /// `bin/busybox` plus many relative applet symlinks.
    Multicall,
    /// `lib/modules/<kver>/kernel/…/*.ko`.
    KernelModules,
    /// `lib/firmware/…` high-entropy blobs.
    Firmware,
    /// Small text: scripts, Lua/Fennel, config files.
    Text,
    /// `bin/init` (the s6-linux-init stage 1), needed by every toplevel.
    InitBin,
}

/// `(name-version, kind, relative size weight)`, core packages first: the
/// first entries are what even the smallest test closure contains.
pub const CORE: &[(&str, Kind, u32)] = &[
    ("musl-1.2.5", Kind::Library, 60),
    ("busybox-1.36.1", Kind::Multicall, 90),
    ("skalibs-2.14.1.1", Kind::Library, 25),
    ("execline-2.9.6.0", Kind::Program, 12),
    ("s6-2.12.0.3", Kind::Program, 20),
    ("s6-rc-0.5.4.2", Kind::Program, 10),
    ("s6-linux-init-1.1.2.0", Kind::Program, 8),
    ("s6-init-bin", Kind::InitBin, 2),
    ("dropbear-2024.85", Kind::Program, 30),
    ("hostapd-2.11", Kind::Program, 80),
    ("dnsmasq-2.90", Kind::Program, 40),
    ("ifwait", Kind::Program, 2),
    ("uevent-watch", Kind::Program, 2),
    ("zlib-1.3.1", Kind::Library, 12),
    ("openssl-3.0.14", Kind::Library, 150),
    ("libnl-3.9.0", Kind::Library, 15),
    ("iw-6.9", Kind::Program, 10),
    ("nftables-1.0.9", Kind::Program, 25),
    ("libnftnl-1.2.6", Kind::Library, 12),
    ("libmnl-1.0.5", Kind::Library, 3),
    ("lua-5.3.6", Kind::Program, 25),
    ("fennel-1.4.2", Kind::Text, 8),
    ("anoia", Kind::Text, 3),
    ("lualinux", Kind::Library, 3),
    ("netlink-lua", Kind::Library, 3),
    ("ppp-2.5.0", Kind::Program, 20),
    ("odhcp6c-unstable-2023-05-12", Kind::Program, 5),
    ("chrony-4.5", Kind::Program, 22),
    ("iproute2-6.9.0", Kind::Program, 45),
    ("ethtool-6.9", Kind::Program, 30),
    ("mtd-utils-2.2.0", Kind::Program, 35),
    ("linux-6.6.52-modules", Kind::KernelModules, 200),
    ("mt76-firmware-20240513", Kind::Firmware, 120),
    ("wireless-regdb-2024.07.04", Kind::Firmware, 1),
    ("wpa_supplicant-2.11", Kind::Program, 70),
    ("firewallgen", Kind::Text, 2),
    ("min-collect-garbage", Kind::Program, 1),
    ("logtap", Kind::Program, 2),
    ("s6-linux-utils-2.6.2.0", Kind::Program, 6),
    ("s6-portable-utils-2.3.0.3", Kind::Program, 6),
    ("ca-certificates-20240203", Kind::Text, 10),
    ("tufted", Kind::Text, 1),
    ("usteer", Kind::Program, 8),
    ("libubox-unstable-2024-04-26", Kind::Library, 6),
    ("ubus-unstable-2023-12-18", Kind::Program, 6),
    ("json-c-0.17", Kind::Library, 5),
];

/// Generated small store paths (configs, service helpers, Lua modules) that
/// make up the long tail of a real closure.
const TAIL_STEMS: &[(&str, Kind, u32)] = &[
    ("hostapd-{}.conf", Kind::Text, 1),
    ("dnsmasq-{}.conf", Kind::Text, 1),
    ("{}.link", Kind::Text, 1),
    ("{}-up", Kind::Text, 1),
    ("{}-down", Kind::Text, 1),
    ("lua-{}", Kind::Text, 2),
    ("kmod-{}", Kind::KernelModules, 3),
    ("lib{}-0.1", Kind::Library, 3),
    ("{}-helper", Kind::Program, 2),
];

const TAIL_WORDS: &[&str] = &[
    "wlan0", "wlan1", "lan", "wan", "br0", "eth0", "eth1", "ppp0", "dhcpc", "ntp", "dns", "nat",
    "vlan10", "guest", "mgmt", "iot", "bond0", "wg0", "lo", "usb0",
];

/// The `n`-th catalogue entry; beyond the core list, synthesised tail names.
pub fn entry(n: usize) -> (String, Kind, u32) {
    if let Some(&(name, kind, w)) = CORE.get(n) {
        return (name.to_string(), kind, w);
    }
    let t = n - CORE.len();
    let (stem, kind, w) = TAIL_STEMS[t % TAIL_STEMS.len()];
    let word = TAIL_WORDS[(t / TAIL_STEMS.len()) % TAIL_WORDS.len()];
    let round = t / (TAIL_STEMS.len() * TAIL_WORDS.len());
    let word = if round == 0 {
        word.to_string()
    } else {
        format!("{word}-{round}")
    };
    let name = stem.replace("{}", &word);
    (name, kind, w)
}

/// The package a service of this name runs, if the catalogue has one.
pub fn package_for_service(service: &str) -> Option<&'static str> {
    let table: &[(&str, &str)] = &[
        ("hostapd", "hostapd-"),
        ("wifi", "hostapd-"),
        ("dhcp", "dnsmasq-"),
        ("dns", "dnsmasq-"),
        ("ntp", "chrony-"),
        ("ssh", "dropbear-"),
        ("firewall", "nftables-"),
        ("ppp", "ppp-"),
        ("dhcpc", "busybox-"),
        ("dhcp6", "odhcp6c-"),
    ];
    table
        .iter()
        .find(|(k, _)| service.contains(k))
        .map(|(_, p)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_names_are_unique() {
        let names: std::collections::BTreeSet<String> = (0..2000).map(|n| entry(n).0).collect();
        assert_eq!(names.len(), 2000);
    }
}
