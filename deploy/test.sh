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
# Every run of the binary keeps what it wrote (tests/audit/nigehban-audit.sh); afterwards
# tests/pii_audit.rs checks those copies and this log for values in clear.
audit=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$audit"' EXIT
export NIGEHBAN_TEST_AUDIT_DIR=$audit
export NIGEHBAN_AUDIT_REAL_BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/nigehban"
cargo test -- --test-threads 2 2>&1 | tee "$log" || status=$?
cp "$log" "$audit/cargo-test.log"
cargo test --quiet --test pii_audit -- --ignored 2>&1 | tee -a "$log" || status=$?
# Every fuzz target builds and survives a short run from its seeds (deploy/fuzz-smoke.sh).
deploy/fuzz-smoke.sh || status=$?
# One closing line over every test binary, for people and CI alike.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
