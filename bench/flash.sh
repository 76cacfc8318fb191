#!/bin/sh
# Flash benchmark: the liminix-agent's flashcp and ubi-update against mtd-utils'
# flashcp (and flashcp -p) and ubiupdatevol, in one QEMU (TCG) guest on nandsim
# with realistic delays (do_delays=1 erase_delay=2 programm_delay=200).
# Erased blocks are counted by tracing MEMERASE ioctls with strace in the guest;
# wall times come from separate untraced runs. Prints Markdown tables.
#
# Assumes scripts/setup.sh ran (qemu, linux-image-amd64, mtd-utils, strace,
# busybox-static, rust musl target). Options are passed on to bench-flash:
#   --raw-mib N (16)  --ubi-mib N (64)  --changed-pct N (10)  --agent PATH (prebuilt static agent)
set -eu
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p liminix-bench --bin bench-flash
exec "$CARGO_TARGET_DIR/release/bench-flash" "$@"
