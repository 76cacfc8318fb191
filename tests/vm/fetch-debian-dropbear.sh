#!/bin/sh
# Fetches Debian's dropbear for a foreign architecture with the shared libraries it loads and
# unpacks them into DIR, a sysroot for `liminix-pack recovery --dropbear DIR/usr/sbin/dropbear
# --lib-root DIR`: `fetch-debian-dropbear.sh ARCH DIR`. The architecture must be in dpkg's
# list with its apt lists (fetch-debian.sh adds it). Idempotent: DIR/.done skips the work.
set -eu
arch=$1 dir=$2
[ -e "$dir/.done" ] && exit 0
mkdir -p "$dir/debs" "$dir/root"
cd "$dir/debs"
apt-get download -q "dropbear-bin:$arch" "libc6:$arch" "libcrypt1:$arch" "libgmp10:$arch" \
    "libtomcrypt1:$arch" "libtommath1:$arch" "zlib1g:$arch"
cd - >/dev/null
for deb in "$dir"/debs/*.deb; do
    dpkg -x "$deb" "$dir/root"
done
touch "$dir/.done"
