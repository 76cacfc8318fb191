#!/usr/bin/env bash
# Closure-update benchmark (issue: closure updates over ssh). One run, same machine, same update:
# a synthetic router closure (BENCH_PACKAGES paths, BENCH_BYTES of binaries, 5% of paths rebuilt),
# sent by update.sh and by the tools it replaces. Prints a markdown table with ratios.
# Needs root and scripts/setup.sh. Not a test: nothing here asserts a time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p liminix-agent --target x86_64-unknown-linux-musl
cargo build --release -q -p liminix-build-tools -p liminix-bench --bin bench-closure
exec "$CARGO_TARGET_DIR/release/bench-closure"
