#!/usr/bin/env bash
# Installs everything the build, the tests and the benchmarks need on a fresh
# Debian 12 machine (run as root). Idempotent: safe to run again.
set -euo pipefail

APT_PACKAGES=(
  # device side of the closure tests: a chroot reached over a real sshd
  busybox-static openssh-server openssh-client dropbear-bin rsync cpio zstd patchelf
  # second opinion on NAR hashes
  nix-bin
  # VM test bed: real kernels with MTD/UBI drivers, real U-Boot
  qemu-system-x86 qemu-system-arm qemu-system-mips qemu-user-static u-boot-qemu u-boot-tools
  libubootenv-tool mtd-utils squashfs-tools dosfstools mtools fdisk btrfs-progs
  linux-image-amd64 device-tree-compiler strace
  # lzma oracle of the uImage tests (build-tools/tests/uboot_images.rs)
  xz-utils
  # static ARMv7 agent for the U-Boot guest
  gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
  # linkers and C libraries of the static MIPS agents (scripts/build-agents.sh), LE and BE;
  # kexec/tests also link MIPS ELFs with their binutils and read the kernel's syscall numbers
  # from the cross packages' asm/unistd*.h
  gcc-mipsel-linux-gnu libc6-dev-mipsel-cross gcc-mips-linux-gnu libc6-dev-mips-cross
  # scripts/build-agents.sh checks each agent is static with file(1)
  file
  # levitate: a real s6-svscan as PID 1 (tests/tests/levitate_s6.rs), readelf and ip as
  # oracles of recovery-image's ELF reader and address parser
  s6 binutils iproute2
  # U-Boot with a redundant environment or btrfs, built from Debian's source package by
  # bootloader-envs/uboot/build-qemu-arm.sh (also uses gcc-arm-linux-gnueabihf and
  # device-tree-compiler from above; the deb-src entry is added below)
  bison flex bc make libssl-dev libgnutls28-dev uuid-dev dpkg-dev
  # Debian's kernel source, from which tests/vm/build-malta-kernel.sh builds the uniprocessor
  # Malta kernel of the mipsel kexec test (with gcc-mipsel-linux-gnu, bison, flex, bc from above)
  linux-source-6.1
  # ubi_reader (below) comes from PyPI
  python3-pip
  # misc
  e2fsprogs util-linux kmod
  # GNU time: the agent's peak RSS on hostile bundles (tests/tests/hostile_memory.rs)
  time
)

export DEBIAN_FRONTEND=noninteractive

# A mirror caught mid-sync fails one index (seen: bookworm-security armhf, "File has
# unexpected size") while the rest are fine. Go on with the lists that were fetched: a
# package that is really unavailable then fails the install with apt's own message.
apt_update() {
  apt-get update -q || echo "setup: apt-get update reported errors (above); continuing with the lists it fetched" >&2
}
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt_update
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Second reader of the UBI images liminix_ubi::image writes (flash/ubi/tests/ubinize_oracle.rs);
# Debian has no package. Pinned: the test reads ubireader_display_info's text.
if ! command -v ubireader_extract_images >/dev/null; then
  python3 -m pip install -q --break-system-packages 'ubi_reader==0.8.16'
  # Under pyenv the new commands reach the PATH only through regenerated shims.
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi

# The fleet test and benchmark drive the collection in ansible/ with the real Ansible
# (tests/tests/fleet_ansible.rs, bench/fleet.sh). Pinned: its plugins use Ansible's connection
# options and callback interface. 2.19 needs Python 3.11, Debian 12's.
if ! python3 -m pip show ansible-core 2>/dev/null | grep -qx 'Version: 2.19.14'; then
  python3 -m pip install -q --break-system-packages 'ansible-core==2.19.14'
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi

rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf >/dev/null
rustup component add clippy rustfmt >/dev/null 2>&1 || true
# MIPS has no rustup standard library: scripts/build-agents.sh builds it from source with this
# pinned nightly (keep the two in step). Stable stays the toolchain of everything else.
rustup toolchain install nightly-2026-05-19 --profile minimal --component rust-src >/dev/null


# The ARM guests (A/B tests with real U-Boot) and the MIPS guest of liminix-vm:
# tests/vm/fetch-debian.sh downloads (does not install) Debian's armhf kernel
# (linux-image-6.1.0-*-armmp), arm64 kernel (linux-image-6.1.0-*-arm64, the booti boot of
# tests/tests/uboot_boots.rs), mipsel kernel (linux-image-6.1.0-*-4kc-malta) and
# busybox-static with `apt-get download`, which needs the architectures in dpkg and the
# apt lists. No further packages: the guests use qemu-system-arm, qemu-system-mips,
# u-boot-qemu, u-boot-tools, mtools, dosfstools, fdisk, cpio and kmod (depmod) from above.
for arch in armhf arm64 mipsel; do
  if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    dpkg --add-architecture "$arch"
    apt_update
  fi
done

# bootloader-envs/uboot/build-qemu-arm.sh fetches U-Boot's source with `apt-get source`,
# which needs a deb-src entry for bookworm main. Added only if none exists (one-line
# sources.list or deb822 .sources).
has_bookworm_src() {
  grep -qsE '^[[:space:]]*deb-src[[:space:]].*[[:space:]]bookworm[[:space:]](.*[[:space:]])?main([[:space:]]|$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list && return 0
  # one stanza per paragraph; a paragraph never spans two files
  awk '
    BEGIN { RS = "" }
    {
      t = s = c = 0
      n = split($0, line, "\n")
      for (i = 1; i <= n; i++) {
        if (line[i] ~ /^Types:.*deb-src/) t = 1
        if (line[i] ~ /^Suites:(.*[ \t])?bookworm([ \t]|$)/) s = 1
        if (line[i] ~ /^Components:(.*[ \t])?main([ \t]|$)/) c = 1
      }
      if (t && s && c) found = 1
    }
    END { exit !found }' /etc/apt/sources.list.d/*.sources 2>/dev/null
}
if ! has_bookworm_src; then
  cat >/etc/apt/sources.list.d/debian-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_update
fi

# The bootstrap tests (tests/tests/bootstrap.rs) run a MIPS busybox and the MIPS agent inside
# the sshd device chroot: binfmt_misc hands them to qemu-user-static. The F flag opens the
# interpreter now, so the chroot needs no copy of it; P keeps argv[0], which busybox needs
# when it re-executes itself for an applet. The tests register the same entries themselves
# (liminix_tests::device::binfmt) when they are missing.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
for arch in mipsel mips; do
  entry=/proc/sys/fs/binfmt_misc/qemu-$arch
  if [ -e "$entry" ] && grep -q '^flags:.*F' "$entry" && grep -q '^flags:.*P' "$entry"; then continue; fi
  [ -e "$entry" ] && echo -1 > "$entry"
  magic=$(sed -n 's/^magic //p' "/usr/share/binfmts/qemu-$arch")
  mask=$(sed -n 's/^mask //p' "/usr/share/binfmts/qemu-$arch")
  interpreter=$(sed -n 's/^interpreter //p' "/usr/share/binfmts/qemu-$arch")
  printf ':qemu-%s:M:0:%s:%s:%s:FP' "$arch" "$magic" "$mask" "$interpreter" \
    > /proc/sys/fs/binfmt_misc/register
done
