#!/usr/bin/env bash
# One command: install what is missing, build, and run Nigehban on the bundled demo capture.
# Alerts (JSON lines) go to stdout; logs to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup-deps.sh
cargo build --release --quiet
exec target/release/nigehban read tests/data/demo.pcap --metrics-listen off "$@"
