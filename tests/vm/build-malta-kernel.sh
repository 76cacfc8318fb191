#!/usr/bin/env bash
# Builds a small uniprocessor Linux for QEMU's MIPS Malta board (little-endian MIPS32r2)
# from Debian's own kernel source (the linux-source-6.1 package) and leaves OUTDIR/vmlinux.
# Debian's 4kc-malta kernel is built with SMP, and an SMP Malta kernel refuses every
# kexec_load (docs/kexec.md); this one is the first and second kernel of the mipsel kexec
# test. Everything the scripted guests need is built in (no modules): the harness cannot
# load Debian's modules into a kernel it built itself.
#
# Cached: OUTDIR/vmlinux is rebuilt only when the source tarball or the configuration below
# changes (OUTDIR/stamp records both); a cached run prints nothing. Parallel callers are
# serialised with flock on OUTDIR/.lock. Needs (scripts/setup.sh installs them):
# linux-source-6.1, gcc-mipsel-linux-gnu, bison, flex, bc, make, xz-utils. No network access.
set -euo pipefail

usage="usage: $0 OUTDIR"
[ $# -eq 1 ] || { echo "$usage" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
tarball=/usr/src/linux-source-6.1.tar.xz
cross=mipsel-linux-gnu-
# tinyconfig, then these. Why each is here:
# - the board, CPU and byte order of `qemu-system-mipsel -M malta`; no SMP (the point);
# - KEXEC; the FPU support userland's floating point needs (allnoconfig turns it off);
# - an uncompressed newc initramfs whose /init is a #! script run by busybox;
# - /proc, /sys, devtmpfs, tmpfs the harness's /init mounts; the serial console;
# - what static glibc programs (busybox, the agent) expect of a kernel: futexes, POSIX
#   timers, user ids, epoll/eventfd, file locks;
# - PCI and the PIIX4 power-off driver, so `poweroff -f` ends QEMU.
options=(
    MIPS_MALTA CPU_LITTLE_ENDIAN CPU_MIPS32_R2 32BIT
    KEXEC MIPS_FP_SUPPORT
    BLK_DEV_INITRD BINFMT_ELF BINFMT_SCRIPT
    PROC_FS SYSFS DEVTMPFS TMPFS SHMEM
    TTY PRINTK SERIAL_8250 SERIAL_8250_CONSOLE
    MULTIUSER FUTEX POSIX_TIMERS EPOLL SIGNALFD TIMERFD EVENTFD FILE_LOCKING
    PCI POWER_RESET POWER_RESET_PIIX4_POWEROFF
)
# Off as well: what TTY and PCI switch on by default and a serial-only guest never uses (the
# VGA text console, keyboard input), to keep the build short.
absent=(SMP MODULES CPU_BIG_ENDIAN MIPS_GENERIC_KERNEL VT INPUT VGA_ARB PCIEASPM)
config="tinyconfig +${options[*]} -${absent[*]}"

fail() {
    echo "build-malta-kernel.sh: $*" >&2
    exit 1
}

exec 9>"$out/.lock"
flock 9

[ -f "$tarball" ] || fail "$tarball missing: install linux-source-6.1 (scripts/setup.sh does)"
# The package's version and the tarball's size and time identify the source.
version=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null) \
    || fail "linux-source-6.1 is not installed; run scripts/setup.sh"
stamp="linux-source-6.1 $version $(stat -c '%s %Y' "$tarball") $config"

if [ -f "$out/vmlinux" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi

for tool in "${cross}gcc" bison flex bc make xz; do
    command -v "$tool" >/dev/null || fail "$tool not found; run scripts/setup.sh"
done

rm -f "$out/vmlinux" "$out/stamp"
log="$out/build.log"
: >"$log"
echo "build-malta-kernel.sh: building Malta vmlinux from $tarball $version (log: $log)" >&2
src="$out/src"
rm -rf "$src"
mkdir -p "$src"
tar -xJf "$tarball" -C "$src" --strip-components=1 >>"$log" 2>&1 \
    || fail "unpacking $tarball failed; see $log"

mk=(make -C "$src" ARCH=mips CROSS_COMPILE="$cross")
configure() {
    "${mk[@]}" tinyconfig
    local args=()
    for o in "${options[@]}"; do args+=(--enable "$o"); done
    for o in "${absent[@]}"; do args+=(--disable "$o"); done
    "$src/scripts/config" --file "$src/.config" "${args[@]}"
    "${mk[@]}" olddefconfig
}
configure >>"$log" 2>&1 || fail "configuring the kernel failed; last lines of $log:
$(tail -n 20 "$log")"

# olddefconfig silently drops options whose dependencies are unmet: check they stuck
# before spending minutes on the build.
for o in "${options[@]}"; do
    grep -qx "CONFIG_$o=y" "$src/.config" || fail "CONFIG_$o=y missing from $src/.config"
done
for o in "${absent[@]}"; do
    ! grep -q "^CONFIG_$o=" "$src/.config" || fail "CONFIG_$o is set in $src/.config"
done

"${mk[@]}" -j"$(nproc)" vmlinux >>"$log" 2>&1 || fail "kernel build failed; last lines of $log:
$(tail -n 20 "$log")"

cp "$src/vmlinux" "$out/vmlinux.new"
mv "$out/vmlinux.new" "$out/vmlinux"
printf '%s\n' "$stamp" >"$out/stamp"
