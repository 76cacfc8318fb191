#!/usr/bin/env bash
# Levitate benchmark (docs/levitate.md): one NOR router guest in QEMU (TCG). Seconds from
# `levitate` to ssh answering in the maintenance root, the RAM that root takes, and the whole
# NOR update by `update.sh` against Liminix's manual path (levitate, copy firmware.bin over
# ssh, flashcp, reboot) on the same VM: seconds and bytes. One run; prints a markdown table;
# asserts nothing. Needs root and what scripts/setup.sh installs (qemu, linux-image-amd64,
# busybox-static, s6, dropbear-bin, mtd-utils, squashfs-tools, u-boot-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p liminix-build-tools -p liminix-bench --bin bench-levitate
exec "$CARGO_TARGET_DIR/release/bench-levitate"
