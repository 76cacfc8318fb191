//! The text files of the maintenance root: /init, the `exec` hook, the banner and the small
//! /etc files dropbear and the shells read.

use crate::network::Network;

/// Where the directory writer puts the root on the device; the hook and PID 1's finish script
/// both name it.
pub const MAINTENANCE_DIR: &str = "/run/maintenance";

/// What the console and every ssh login shows (dropbear's `-b` banner).
pub const BANNER: &str = "
  MAINTENANCE MODE: this router now runs from a root in RAM.

  Nothing is read from the flash any more, so it is safe to rewrite it:
      flashcp -v firmware.bin mtd:firmware
  or let `update.sh root@router` write the new image.

  To leave, type `reboot`: the router starts again from the flash.

";

/// The hook PID 1's `.s6-svscan/finish` execs (`test -x /run/maintenance/exec`). It runs as
/// PID 1 on the old root: it ends every other process (none may keep a file of the old root
/// open), then changes root into the maintenance root and execs its /init, still as PID 1. It
/// runs the maintenance root's own busybox, so nothing of the old root is needed after this.
pub fn hook() -> String {
    format!(
        "#!{MAINTENANCE_DIR}/bin/busybox sh
# Run as PID 1 by .s6-svscan/finish once s6-svscan has stopped (liminix-agent levitate).
B={MAINTENANCE_DIR}/bin/busybox
# `kill -1` below ends every process but the caller: only ever as PID 1 (of a namespace).
[ $$ = 1 ] || {{ echo \"$0: not PID 1, refusing\" >&2; exit 1; }}
cd {MAINTENANCE_DIR} || exit 1
# finish gave us the console on stdout; the maintenance root gets it on every descriptor.
[ -t 1 ] && exec </dev/console >/dev/console 2>&1
$B kill -TERM -1
$B sleep 1
$B kill -KILL -1
exec $B env -i HOME=/ TERM=linux $B chroot {MAINTENANCE_DIR} /init
"
    )
}

/// The maintenance root's PID 1: mounts the kernel filesystems, brings up the network as it
/// was, starts dropbear with the device's host keys, shows the banner on the console and keeps
/// a shell there. `reboot`, `poweroff` and `halt` (busybox's, which signal PID 1 with TERM,
/// USR2 and USR1) end every process, sync, and then really reboot (`reboot -f`).
pub fn init(net: &Network, dropbear_args: &str) -> String {
    let mut s = String::from(INIT_HEAD);
    s.push_str("ip link set lo up\n");
    for (bridge, members) in &net.bridges {
        s.push_str(&format!("ip link add {bridge} type bridge 2>/dev/null\n"));
        for m in members {
            s.push_str(&format!("ip link set {m} master {bridge} 2>/dev/null\n"));
            s.push_str(&format!("ip link set {m} up\n"));
        }
        s.push_str(&format!("ip link set {bridge} up\n"));
    }
    for dev in net.interfaces() {
        s.push_str(&format!("ip link set {dev} up\n"));
    }
    // On the s6 path the kernel still has them: "File exists" is fine.
    for (dev, cidr) in &net.addresses {
        s.push_str(&format!("ip addr add {cidr} dev {dev} 2>/dev/null\n"));
    }
    for route in &net.routes {
        s.push_str(&format!("ip route add {route} 2>/dev/null\n"));
    }
    for dev in &net.dhcp {
        s.push_str(&format!("ip link set {dev} up\n"));
        s.push_str(&format!(
            "respawn udhcpc-{dev} udhcpc -f -i {dev} -s {UDHCPC_SCRIPT} &\n"
        ));
    }
    s.push_str(&format!(
        "respawn dropbear /bin/dropbear -F -E -s -b /etc/banner -P /run/dropbear.pid {dropbear_args} &\n"
    ));
    s.push_str(INIT_TAIL);
    s
}

const INIT_HEAD: &str = r#"#!/bin/sh
# PID 1 of the maintenance root (liminix-recovery): from the levitate hook or as an initramfs.
export PATH=/bin HOME=/root TERM=linux
mkdir -p /proc /sys /dev /run /tmp
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts 2>/dev/null
# Started on a terminal (the kernel's console, or the one the hook passed on): keep a shell
# there. Started without one (a container), leave stdio and the host's console alone.
if [ -t 0 ]; then
    exec 0<>/dev/console 1>&0 2>&0
    console=yes
fi

respawn() {
    name=$1
    shift
    while :; do
        "$@"
        echo "maintenance: $name exited ($?), starting it again" >&2
        sleep 1
    done
}

console_shell() {
    tty=$(cat /sys/class/tty/console/active 2>/dev/null)
    tty=${tty##* }
    [ -n "$tty" ] && [ -c "/dev/$tty" ] || tty=console
    # A session of its own on the real terminal, so that ^C reaches the shell.
    setsid sh -c "exec sh -l <>/dev/$tty >&0 2>&0" || sh -l
}

leave() {
    echo "maintenance: $1" >&2
    kill -TERM -1
    sleep 1
    kill -KILL -1
    sync
    $1 -f
}

if [ -f /etc/modules ]; then
    while read -r module; do
        [ -n "$module" ] && modprobe "$module"
    done </etc/modules
fi
# The board's flash partitions, where its kernel does not make them (liminix_recovery::carry).
if [ -x /etc/liminix/flash-setup ]; then
    /etc/liminix/flash-setup || echo "maintenance: /etc/liminix/flash-setup failed" >&2
fi
"#;

const INIT_TAIL: &str = r#"cat /etc/banner
trap 'leave reboot' TERM INT
trap 'leave poweroff' USR2
trap 'leave halt' USR1
[ -n "$console" ] && respawn console console_shell &
echo "maintenance: ready"
# PID 1 waits for ever: wait returns on every child's end and every trapped signal.
while :; do
    wait
done
"#;

/// Where the lease script lives; written only when an interface uses DHCP.
pub const UDHCPC_SCRIPT: &str = "/etc/udhcpc.script";

/// busybox udhcpc's lease script: it gets the lease in the environment (`mask` is the prefix
/// length) and must set the address and default route itself.
pub const UDHCPC: &str = r#"#!/bin/sh
case "$1" in
deconfig)
    ip addr flush dev "$interface"
    ;;
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    for r in $router; do
        ip route replace default via "$r" dev "$interface"
        break
    done
    echo "maintenance: $interface has $ip/$mask by DHCP" >/dev/console
    ;;
esac
exit 0
"#;

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n";
pub const GROUP: &str = "root:x:0:\n";
pub const SHELLS: &str = "/bin/sh\n/bin/ash\n";
pub const PROFILE: &str = "export PATH=/bin\nPS1='maintenance:\\w# '\n";

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The oracle is the shell's own parser (`sh -n`).
    #[test]
    fn the_scripts_parse() {
        let net = Network::parse(
            "2: eth0    inet 10.0.2.15/24 scope global eth0\n",
            "default via 10.0.2.2 dev eth0\n",
        )
        .unwrap();
        let mut net = net;
        net.bridges = vec![("br0".into(), vec!["eth1".into()])];
        net.add_dhcp("lan2").unwrap();
        let init = init(&net, "-r /etc/dropbear/dropbear_ed25519_host_key");
        assert!(init.contains("ip link set eth1 master br0"));
        assert!(init.contains("ip addr add 10.0.2.15/24 dev eth0"));
        assert!(init.contains("ip route add default via 10.0.2.2 dev eth0"));
        assert!(init.contains("udhcpc -f -i lan2 -s /etc/udhcpc.script"));
        for script in [init, hook(), UDHCPC.to_owned()] {
            let out = Command::new("busybox")
                .args(["sh", "-n", "-c", &script])
                .output()
                .expect("busybox (Debian package busybox-static)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
