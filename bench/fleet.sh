#!/usr/bin/env bash
# Fleet benchmark (docs/fleet.md): fleets of 20 and 50 device chroots behind real sshds, updated
# by the liminix.update rolling-update playbook with 10 forks and by update.sh one device after
# another. Prints a markdown table: seconds, build-host CPU, bytes up and down. One run; nothing
# asserted about time. Needs root, scripts/setup.sh (ansible-core). BENCH_FLEETS="20 50",
# BENCH_PACKAGES and BENCH_BYTES size the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p liminix-agent --target x86_64-unknown-linux-musl
cargo build --release -q -p liminix-build-tools -p liminix-bench --bin bench-fleet
exec "$CARGO_TARGET_DIR/release/bench-fleet"
