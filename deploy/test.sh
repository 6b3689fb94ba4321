#!/usr/bin/env bash
# One command: install what is missing and run the whole test suite (unit, integration, the live
# capture test in network namespaces, which needs root), and check that benchmarks build.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup-deps.sh
cargo build --benches --quiet
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test -- --test-threads 2 2>&1 | tee "$log" || status=$?
# ---- fuzz ----
# Every fuzz target builds and survives a short run from its seeds (deploy/fuzz-smoke.sh).
deploy/fuzz-smoke.sh || status=$?
# ---- end fuzz ----
# One closing line over every test binary, for people and CI alike.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
