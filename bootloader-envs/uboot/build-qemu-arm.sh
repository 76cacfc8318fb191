#!/usr/bin/env bash
# Builds U-Boot for QEMU's ARM virt machine (qemu_arm_defconfig) from Debian's own
# source package with what Debian's packaged build leaves out, and leaves
# OUTDIR/u-boot.bin. VARIANT is one of
#   redundant  a redundant environment in the second pflash bank (Debian's build has a
#              single copy): tests/uboot_qemu_redundant.rs;
#   btrfs      btrfs support (CONFIG_FS_BTRFS, the `btrfs` command), so that distro boot
#              reads extlinux.conf from a btrfs as the Turris Omnia's U-Boot does:
#              tests/tests/omnia_stick_vm.rs.
#
# Cached: OUTDIR/u-boot.bin is rebuilt only when the source package apt would fetch or
# the configuration below changes (OUTDIR/stamp records both); a cached run prints
# nothing. Parallel callers are serialised with flock on OUTDIR/.lock.
# Needs (scripts/setup.sh installs them): a deb-src entry for bookworm main, bison,
# flex, bc, libssl-dev, libgnutls28-dev, uuid-dev, device-tree-compiler, dpkg-dev and
# gcc-arm-linux-gnueabihf. The only network access is apt fetching the source package.
set -euo pipefail

usage="usage: $0 redundant|btrfs OUTDIR"
[ $# -eq 2 ] || { echo "$usage" >&2; exit 2; }
variant=$1
mkdir -p "$2"
out=$(cd "$2" && pwd)
cross=arm-linux-gnueabihf-

fail() {
    echo "build-qemu-arm.sh: $*" >&2
    exit 1
}

# Each variant: the scripts/config arguments applied to qemu_arm_defconfig, and the
# .config lines that must hold after olddefconfig (which silently drops options whose
# dependencies are unmet).
case $variant in
redundant)
    # Copy 0 at CONFIG_ENV_ADDR (0x4000000, offset 0 of the second bank, kept from the
    # defconfig), copy 1 one 256 KiB sector (CONFIG_ENV_SECT_SIZE) further. Word writes
    # instead of CFI buffer writes: Debian 12's QEMU 7.2 pflash refuses U-Boot's buffer
    # writes ("Write to buffer emulation is flawed", QEMU issue 2343), so with them
    # saveenv fails in both Debian's build and ours.
    options=(--enable SYS_REDUNDAND_ENVIRONMENT --set-val ENV_ADDR_REDUND 0x4040000
        --disable SYS_FLASH_USE_BUFFER_WRITE)
    expect=(CONFIG_SYS_REDUNDAND_ENVIRONMENT=y CONFIG_ENV_ADDR_REDUND=0x4040000
        CONFIG_ENV_IS_IN_FLASH=y CONFIG_ENV_ADDR=0x4000000 CONFIG_ENV_SIZE=0x40000
        CONFIG_ENV_SECT_SIZE=0x40000 "# CONFIG_SYS_FLASH_USE_BUFFER_WRITE is not set")
    ;;
btrfs)
    # FS_BTRFS puts btrfs into the generic filesystem layer (`fstype`, `test -e`,
    # `load`, `sysboot`), which is all distro boot uses; CMD_BTRFS adds `btrsubvol`.
    options=(--enable FS_BTRFS --enable CMD_BTRFS)
    expect=(CONFIG_FS_BTRFS=y CONFIG_CMD_BTRFS=y CONFIG_DISTRO_DEFAULTS=y
        CONFIG_CMD_PART=y CONFIG_CMD_FS_GENERIC=y)
    ;;
*)
    echo "$usage" >&2
    exit 2
    ;;
esac
config="qemu_arm_defconfig ${options[*]}"

exec 9>"$out/.lock"
flock 9

# The .dsc line apt would fetch: file name and SHA256 identify the source exactly.
if ! uris=$(apt-get source --print-uris u-boot 2>&1); then
    fail "apt cannot locate the u-boot source package (no deb-src entry for bookworm
main, or apt-get update not run since it was added); scripts/setup.sh adds it:
$uris"
fi
dsc_line=$(printf '%s\n' "$uris" | grep -E "^'[^']+' u-boot_[^ ]+\.dsc " | head -n 1) \
    || fail "no u-boot .dsc in apt-get source --print-uris output:
$uris"
dsc=$(printf '%s\n' "$dsc_line" | cut -d' ' -f2)
stamp="$(printf '%s\n' "$dsc_line" | cut -d' ' -f2,4) $config"

if [ -f "$out/u-boot.bin" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi

for tool in "${cross}gcc" bison flex bc dtc dpkg-source make; do
    command -v "$tool" >/dev/null || fail "$tool not found; run scripts/setup.sh"
done
for hdr in openssl/evp.h gnutls/gnutls.h uuid/uuid.h; do
    [ -e "/usr/include/$hdr" ] || fail "/usr/include/$hdr missing; run scripts/setup.sh"
done

rm -f "$out/u-boot.bin" "$out/stamp"
mkdir -p "$out/dl"
log="$out/build.log"
: >"$log"
echo "build-qemu-arm.sh: building $variant U-Boot from $dsc (log: $log)" >&2
(cd "$out/dl" && apt-get source --download-only u-boot) >>"$log" 2>&1 \
    || fail "apt-get source --download-only u-boot failed; see $log"

src="$out/src"
rm -rf "$src"
dpkg-source --no-copy -x "$out/dl/$dsc" "$src" >>"$log" 2>&1 \
    || fail "dpkg-source -x $dsc failed; see $log"

build() {
    make -C "$src" CROSS_COMPILE="$cross" qemu_arm_defconfig
    "$src/scripts/config" --file "$src/.config" "${options[@]}"
    make -C "$src" CROSS_COMPILE="$cross" olddefconfig
    make -C "$src" CROSS_COMPILE="$cross" -j"$(nproc)"
}
build >>"$log" 2>&1 || fail "U-Boot build failed; last lines of $log:
$(tail -n 20 "$log")"

# olddefconfig silently drops options whose dependencies are unmet: check they stuck.
for want in "${expect[@]}"; do
    grep -qx "$want" "$src/.config" || fail "$want missing from $src/.config"
done

cp "$src/u-boot.bin" "$out/u-boot.bin.new"
mv "$out/u-boot.bin.new" "$out/u-boot.bin"
printf '%s\n' "$stamp" >"$out/stamp"
