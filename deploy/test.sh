#!/usr/bin/env bash
# One command: install what is missing and run the whole test suite (unit, integration, the live
# capture test in network namespaces, which needs root), and check that benchmarks build.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup-deps.sh
cargo build --benches --quiet
cargo test --quiet -- --test-threads 2
