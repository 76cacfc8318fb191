#!/usr/bin/env bash
# Installs everything the build, the tests and the benchmarks need on a fresh
# Debian 12 machine (run as root). Idempotent: safe to run again.
set -euo pipefail

APT_PACKAGES=(
  # device side of the closure tests: a chroot reached over a real sshd
  busybox-static openssh-server openssh-client dropbear-bin rsync cpio zstd
  # second opinion on NAR hashes
  nix-bin
  # VM test bed: real kernels with MTD/UBI drivers, real U-Boot
  qemu-system-x86 qemu-system-arm qemu-user-static u-boot-qemu u-boot-tools
  libubootenv-tool mtd-utils squashfs-tools dosfstools mtools fdisk
  linux-image-amd64 device-tree-compiler strace
  # static ARMv7 agent for the U-Boot guest
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
  # misc
  e2fsprogs util-linux kmod
)

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf >/dev/null
rustup component add clippy rustfmt >/dev/null 2>&1 || true


# A/B tests with real U-Boot (tests/tests/ab_uboot_qemu.rs): tests/vm-arm/fetch.sh
# downloads (does not install) Debian's armhf kernel (linux-image-6.1.0-*-armmp) and
# busybox-static with `apt-get download`, which needs armhf in dpkg's architectures
# and apt lists. No further packages: it uses qemu-system-arm, u-boot-qemu,
# u-boot-tools, mtools, dosfstools, fdisk and cpio from the list above.
if ! dpkg --print-foreign-architectures | grep -qx armhf; then
  dpkg --add-architecture armhf
  apt-get update -q
fi
