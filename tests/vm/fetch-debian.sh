#!/bin/sh
# Fetches one foreign Debian architecture's kernel and busybox-static for the QEMU guests and
# unpacks them into DIR: `fetch-debian.sh ARCH FLAVOUR DIR`, e.g. `armhf armmp` (the ARM
# U-Boot guest) or `mipsel 4kc-malta` (the MIPS guest). The .debs carry no modules.dep, so
# depmod writes one (guests load modules with modprobe). Idempotent: a DIR/.done stamp skips
# the work. Adds ARCH to dpkg's architectures and apt lists if needed (scripts/setup.sh
# adds armhf and mipsel up front).
set -eu
arch=$1 flavour=$2 dir=$3
[ -e "$dir/.done" ] && exit 0
mkdir -p "$dir/debs" "$dir/root"
if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    dpkg --add-architecture "$arch"
    # one index failing (a mirror mid-sync) must not stop the others being used
    apt-get update -q || echo "fetch-debian.sh: apt-get update reported errors; using the lists it fetched" >&2
fi
# The newest plain flavour apt offers (not -lpae, -rt or -dbg).
kpkg=$(apt-cache search --names-only "^linux-image-6\\.1\\.0-[0-9]+-$flavour\$" \
    | cut -d' ' -f1 | sort -V | tail -n 1)
[ -n "$kpkg" ] || { echo "no linux-image-6.1.0-*-$flavour in the apt lists for $arch" >&2; exit 1; }
cd "$dir/debs"
apt-get download -q "$kpkg:$arch" "busybox-static:$arch"
cd - >/dev/null
for deb in "$dir"/debs/*.deb; do
    dpkg -x "$deb" "$dir/root"
done
for m in "$dir"/root/lib/modules/*; do
    depmod -b "$dir/root" "$(basename "$m")"
done
touch "$dir/.done"
