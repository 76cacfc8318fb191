#!/usr/bin/env bash
# The project's test command: installs what the tests need, checks formatting and lints, and runs
# every test (unit tests, the sshd-chroot device tests, QEMU tests with real MTD/UBI drivers and real
# U-Boot). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# Static agents the end-to-end tests put into chroots and VMs.
cargo build --release -p liminix-agent --target x86_64-unknown-linux-musl
cargo build --release -p liminix-build-tools
bash scripts/build-agents.sh
cargo test --workspace --no-fail-fast
