#!/usr/bin/env bash
# Builds the static on-device agent for every CPU a supported board has, and leaves each at
# ${CARGO_TARGET_DIR:-target}/agents/<rust target triple>/liminix-agent. Prints the stripped size
# of each. Needs what scripts/setup.sh installs (rustup targets, the pinned nightly with rust-src,
# Debian's cross C compilers as linkers).
#
# rustup ships no standard library for MIPS (a tier 3 target), so the two MIPS agents are built
# with a pinned nightly that compiles std itself (-Zbuild-std); every other target uses stable.
set -euo pipefail
cd "$(dirname "$0")/.."

# Keep in step with scripts/setup.sh, which installs it.
MIPS_TOOLCHAIN=nightly-2026-05-19

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out="$target_dir/agents"

# armv7: rustup serves the hard-float standard library only for glibc; glibc with +crt-static
# (.cargo/config.toml) gives a static executable, the musl armv7 target has no rustup std here.
STABLE_TARGETS=(
  x86_64-unknown-linux-musl
  aarch64-unknown-linux-musl
  armv7-unknown-linux-gnueabihf
)
MIPS_TARGETS=(
  mipsel-unknown-linux-gnu
  mips-unknown-linux-gnu
)

build_stable() {
  cargo build --release --quiet -p liminix-agent --bin liminix-agent --target "$1"
}

build_mips() {
  cargo "+$MIPS_TOOLCHAIN" build --release --quiet -p liminix-agent --bin liminix-agent \
    --target "$1" -Zbuild-std=std,panic_abort
}

collect() {
  local triple=$1
  mkdir -p "$out/$triple"
  cp "$target_dir/$triple/release/liminix-agent" "$out/$triple/liminix-agent"
  # A dynamically linked agent would not run on a router's busybox userland.
  if ! file -L "$out/$triple/liminix-agent" | grep -Eq "statically linked|static-pie linked"; then
    echo "build-agents: $triple: not a static executable: $(file -L "$out/$triple/liminix-agent")" >&2
    exit 1
  fi
}

for t in "${STABLE_TARGETS[@]}"; do
  echo "build-agents: $t (stable)" >&2
  build_stable "$t"
  collect "$t"
done
for t in "${MIPS_TARGETS[@]}"; do
  echo "build-agents: $t ($MIPS_TOOLCHAIN, -Zbuild-std)" >&2
  build_mips "$t"
  collect "$t"
done

# No MIPS machine here: user-mode QEMU runs the MIPS agents, which must at least start.
qemu-mipsel-static "$out/mipsel-unknown-linux-gnu/liminix-agent" --help >/dev/null
qemu-mips-static "$out/mips-unknown-linux-gnu/liminix-agent" --help >/dev/null

printf '%-32s %10s %8s\n' "target" "bytes" "MiB"
for t in "${STABLE_TARGETS[@]}" "${MIPS_TARGETS[@]}"; do
  size=$(stat -c %s "$out/$t/liminix-agent")
  awk -v t="$t" -v s="$size" 'BEGIN { printf "%-32s %10d %8.2f\n", t, s, s / 1048576 }'
done
