#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ and runs each for a short while from its committed seeds;
# fails on any crash, panic, timeout or out-of-memory. CI runs it from deploy/test.sh.
#
#   deploy/fuzz-smoke.sh            # every target, FUZZ_SECONDS (default 20) each
#   deploy/fuzz-smoke.sh http dns   # some targets
#
# Builds with plain cargo and the flags `cargo fuzz build -s none -a` uses (libFuzzer coverage
# instrumentation, --cfg fuzzing, debug assertions), so CI needs neither cargo-fuzz nor a nightly
# toolchain; `cargo fuzz run <target>` works the same on a developer's machine. No sanitizer: the
# fuzzed code is safe Rust (unsafe is confined to the Hyperscan bindings), so panics, debug
# assertions and libFuzzer's own timeout and memory limits are the oracles.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-2}
triple=$(rustc -vV | sed -n 's/^host: //p')
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(decode defrag reassembly http mime dns rules pcap_file)
fi

export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions -Ccodegen-units=1"
cargo build --locked --release --config 'profile.release.debug="line-tables-only"' --target "$triple" --bins --quiet
bin_dir="${CARGO_TARGET_DIR:-target}/$triple/release"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p artifacts
run_one() {
    local t=$1
    mkdir -p "$work/$t" "artifacts/$t"
    # New inputs go to the scratch corpus (first directory); the seeds are only read.
    if "$bin_dir/$t" "$work/$t" "corpus/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$work/$t.log" 2>&1; then
        echo "fuzz $t: ok, $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$') execs, $(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -1)"
    else
        echo "fuzz $t: FAILED (reproducer in fuzz/artifacts/$t/)"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$work/$t.log" | head -5
        return 1
    fi
}
export -f run_one
export work seconds bin_dir
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}'
