#!/bin/sh
# Fetches Debian's armhf kernel (linux-image-6.1.0-*-armmp) and busybox-static for the
# ARM U-Boot tests and unpacks them into DIR (default: target/vm-arm). Idempotent: a
# DIR/.done stamp skips the work. Needs the armhf architecture in dpkg and apt lists
# (scripts/setup.sh adds both).
set -eu
dir=${1:-target/vm-arm}
[ -e "$dir/.done" ] && exit 0
mkdir -p "$dir/debs" "$dir/root"
if ! dpkg --print-foreign-architectures | grep -qx armhf; then
    dpkg --add-architecture armhf
    # one index failing (a mirror mid-sync) must not stop the others being used
    apt-get update -q || echo "fetch.sh: apt-get update reported errors; using the lists it fetched" >&2
fi
# The newest plain armmp flavour apt offers (not -lpae, -rt or -dbg).
kpkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-armmp$' \
    | cut -d' ' -f1 | sort -V | tail -n 1)
[ -n "$kpkg" ] || { echo "no linux-image-6.1.0-*-armmp in the apt lists" >&2; exit 1; }
cd "$dir/debs"
apt-get download -q "$kpkg:armhf" busybox-static:armhf
cd - >/dev/null
for deb in "$dir"/debs/*.deb; do
    dpkg -x "$deb" "$dir/root"
done
touch "$dir/.done"
