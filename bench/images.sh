#!/bin/sh
# Image build benchmark: the packer's writers (squashfs, lzma uImage, firmware.bin, UBIFS,
# UBI volume image, Zyxel firmware FIT, and the whole GL-AR750 mtdimage through the
# `liminix-pack image` library) against the Liminix pipeline (mksquashfs, lzma +
# mkimage, dd conv=sync, mkfs.ubifs + ubinize, mkimage -f) on the same generated inputs.
# One run; prints a Markdown table and asserts nothing.
#
# Assumes scripts/setup.sh ran (squashfs-tools, u-boot-tools, mtd-utils, xz-utils, dtc).
# Options are passed on to bench-images:  --root-mib N (16)  --kernel-mib N (3)
set -eu
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p liminix-bench --bin bench-images
exec "$CARGO_TARGET_DIR/release/bench-images" "$@"
