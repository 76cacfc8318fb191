#!/usr/bin/env bash
# The main job on an embedded default: a demo router on this machine receives two updates (one
# with --fast) and rolls back. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p liminix-agent --target x86_64-unknown-linux-musl
cargo build --release -q -p liminix-build-tools -p liminix-tests --bin liminix-demo
exec "$CARGO_TARGET_DIR/release/liminix-demo"
