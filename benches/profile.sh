#!/bin/sh
# Where `nigehban read` spends its instructions: callgrind on the release binary reading a
# generated capture with 1 worker, costs grouped by module path.
#
# Usage: benches/profile.sh [MIX] [SIZE]   (defaults: cleartext 16M; needs valgrind, python3)
# Env: CARGO_TARGET_DIR (default target), NIGEHBAN_BIN (default $CARGO_TARGET_DIR/release/nigehban;
#      build it with `cargo build --release`), OUT (default $CARGO_TARGET_DIR/profile).
#
# Two tables: "self" (exclusive instructions of every function, summed by the module its
# symbol lives in: inlined code counts where it was inlined) and "inclusive" (a stage's entry
# points with everything they call; stages nest: worker packet > reassembly > l7 > matching >
# validation, so these do not add up). Instruction counts repeat within a fraction of a percent
# however loaded the machine is, which wall-clock time does not.
set -eu
MIX=${1:-cleartext}
SIZE=${2:-16M}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${NIGEHBAN_BIN:-$TARGET/release/nigehban}
OUT=${OUT:-$TARGET/profile}
mkdir -p "$OUT" "$TARGET/bench-data"
PCAP="$TARGET/bench-data/profile-$MIX-$SIZE-seed1.pcap"
[ -f "$PCAP" ] || "$BIN" bench-gen --mix "$MIX" --size "$SIZE" --seed 1 --out "$PCAP"
CG="$OUT/callgrind.$MIX.out"
# REUSE=1 re-reads an earlier profile instead of running valgrind again.
if [ "${REUSE:-0}" != 1 ] || [ ! -f "$CG" ]; then
    valgrind --tool=callgrind --callgrind-out-file="$CG" "$BIN" read "$PCAP" --workers 1 \
        --alerts /dev/null --metrics-listen off --log-format json 2>"$OUT/valgrind.$MIX.log" >/dev/null
fi
callgrind_annotate --auto=no --inclusive=no --threshold=100 "$CG" 2>/dev/null >"$OUT/self.$MIX.txt"
callgrind_annotate --auto=no --inclusive=yes --threshold=100 "$CG" 2>/dev/null >"$OUT/inclusive.$MIX.txt"
python3 - "$OUT/self.$MIX.txt" "$OUT/inclusive.$MIX.txt" <<'PY'
import re, sys
line = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$")
def rows(path):
    total, out = None, []
    for l in open(path, errors="replace"):
        m = line.match(l)
        if not m:
            continue
        ir, sym = int(m.group(1).replace(",", "")), m.group(2)
        if "PROGRAM TOTALS" in sym:
            total = ir
        else:
            # "file:function [object]": functions are grouped by their own name, the object
            # (shared library) decides for code without symbols.
            fn, _, obj = sym.partition(" [")
            fn = fn.split(":", 1)[1] if ":" in fn else fn
            out.append((ir, fn + " [" + obj))
    return total, out
# Module of a symbol, most specific first: (label, test)
groups = [
    ("capture: file read (ours or libpcap)", lambda s: "libpcap" in s or "capture::FileSource" in s or "capture::classic" in s or s.startswith("pcap::") or "_IO_" in s or "fread" in s),
    ("decode", lambda s: "nigehban::decode" in s),
    ("flow table", lambda s: "nigehban::flow" in s or "hashlink" in s or "foldhash" in s),
    ("reassembly", lambda s: "nigehban::reassembly" in s),
    ("l7 decoding (incl. inflate)", lambda s: "nigehban::l7" in s or "zlib_rs" in s or "brotli" in s or "httparse" in s or "flate2" in s),
    ("matching: Hyperscan", lambda s: ("libhs" in s and not s.startswith("ue2::")) or s.startswith("hyperscan::")),
    ("matching: nigehban::matcher", lambda s: "nigehban::matcher" in s),
    ("validation", lambda s: "nigehban::validate" in s),
    ("judge + pii hashing", lambda s: "nigehban::judge" in s or "nigehban::pii" in s or "sha2" in s or "hmac" in s),
    ("alerting + sinks", lambda s: "nigehban::alert" in s or "nigehban::sink" in s or "serde_json" in s),
    ("pipeline (worker, batches, queues)", lambda s: "nigehban::pipeline" in s or "nigehban::app" in s or "crossbeam" in s),
    ("rules load + Hyperscan compile", lambda s: "nigehban::rules" in s or "ue2::" in s),
    ("memcpy/memmove/memset", lambda s: re.search(r"mem(cpy|move|set|cmp)|__memcpy|__memmove", s) is not None),
    ("allocator", lambda s: re.search(r"\bmalloc|\bfree\b|realloc|_int_|calloc", s) is not None),
    ("kernel/ld.so/other libc", lambda s: "ld-linux" in s or "libc.so" in s or "???" in s),
]
total, self_rows = rows(sys.argv[1])
acc = {}
for ir, sym in self_rows:
    for label, test in groups:
        if test(sym):
            acc[label] = acc.get(label, 0) + ir
            break
    else:
        acc["other"] = acc.get("other", 0) + ir
print(f"total {total:,} Ir\n\n| stage (self cost by module) | Ir | share |\n|---|---:|---:|")
for label, _ in groups + [("other", None)]:
    if label in acc:
        print(f"| {label} | {acc[label]:,} | {100*acc[label]/total:.1f}% |")
itotal, inc_rows = rows(sys.argv[2])
entries = [
    ("capture thread: file read", "nigehban::capture::FileSource::next_packet"),
    ("decode (both threads)", "nigehban::decode::Decoder::decode"),
    ("worker: batches (flows, reassembly, l7, matching)", "nigehban::pipeline::worker::Worker::batch"),
    ("worker: per packet", "nigehban::pipeline::worker::Worker::packet"),
    ("flow table get", "nigehban::flow::table::FlowTable<V>::get"),
    ("reassembly: segment", "nigehban::reassembly::Reassembler::segment"),
    ("l7: AppDecoder data", "nigehban::l7::app::AppDecoder::data"),
    ("matching: DirScanner::feed", "nigehban::matcher::stream::DirScanner::feed"),
    ("validation: validate", "nigehban::validate::validate"),
    ("judge", "nigehban::pipeline::worker::Engine::judge_findings"),
    ("alerting: end_flow", "nigehban::pipeline::worker::Engine::end_flow"),
    ("matching: Hyperscan scan", "hs_scan_stream"),
    ("matching: hits found (Hyperscan, digit-run scan, hits decided while scanning)", "nigehban::matcher::stream::Active::find_hits"),
    ("matching: digit-run scan and its hits", "nigehban::matcher::digits::run_ends"),
    ("matching: hits resolved (validation, keywords)", "nigehban::matcher::stream::Active::resolve"),
    ("startup: load and check rules", "nigehban::rules::RuleSet::load_dir"),
    ("startup: compile the database", "hs_compile_multi"),
]
print("\n| entry point (inclusive) | Ir | share |\n|---|---:|---:|")
found = {}
for label, name in entries:
    irs = [ir for ir, sym in inc_rows if name in sym]
    if irs:
        found[label] = max(irs)
        print(f"| {label} `{name.split('::', 1)[-1]}` | {max(irs):,} | {100*max(irs)/itotal:.1f}% |")
# Startup (rule checks compile each pattern alone; then the whole database) is paid once per
# run; on a 16 MiB capture it is a large share that a long capture does not have. Hyperscan's
# own functions have no symbols, so the self table above counts its compile under matching.
startup = sum(v for k, v in found.items() if k.startswith("startup"))
print(f"\nwork on the data (total minus startup): {itotal - startup:,} Ir")
PY
