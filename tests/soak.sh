#!/usr/bin/env bash
# tests/soak.sh [SECONDS]: the soak of tests/tests/soak.rs for SECONDS (default 600) instead of
# CI's 60, with Granular's default worker ring (GRANULAR_RING_KB=16384) instead of CI's 2048:
# the demo service saturated by the load driver in both GRANULAR_SAMPLE modes side by side,
# its RSS, open fds, threads and analyzer CPU read from /proc every second. Writes the figures
# to docs/reliability.md (the soak block under "Last long runs"), also when the run fails.
# Needs the Jaeger binary (deploy/jaeger/build.sh); builds the demo binaries it runs (debug,
# as CI runs them).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
	echo "usage: tests/soak.sh [SECONDS]: SECONDS must be a whole number above 0 (default 600), not '$secs'" >&2
	exit 2
fi
cargo build -p granular-examples --bins
GRANULAR_SOAK_SECS="$secs" GRANULAR_SOAK_RING_KB=16384 GRANULAR_WRITE_DOCS=1 \
	cargo test -p granular-e2e --test soak -- --nocapture
