#!/usr/bin/env bash
# Stands in for the nigehban binary while `deploy/test.sh` audits the suite's outputs: runs the
# real binary with the same arguments and exit status, and keeps a copy of everything it wrote
# to stdout, stderr and its alert file under $NIGEHBAN_TEST_AUDIT_DIR, so that
# `tests/pii_audit.rs` can check afterwards that no personal value ever left in clear.
set -u
real=${NIGEHBAN_AUDIT_REAL_BIN:?NIGEHBAN_AUDIT_REAL_BIN names the real binary}
dir=${NIGEHBAN_TEST_AUDIT_DIR:?}
run="$dir/run-$$-$RANDOM"
alerts=""
prev=""
for a in "$@"; do
  [ "$prev" = "--alerts" ] && alerts=$a
  prev=$a
done
# `<&0`: a background job of a non-interactive shell would otherwise read /dev/null, and a test
# may pipe a capture into the sensor.
"$real" "$@" <&0 > >(tee "$run.stdout") 2> >(tee "$run.stderr" >&2) &
child=$!
# Tests stop the sensor with SIGTERM/SIGINT/SIGHUP sent to this pid: hand them on.
for sig in TERM INT HUP; do
  trap "kill -$sig $child 2>/dev/null" "$sig"
done
status=0
while :; do
  wait "$child"; status=$?
  # `wait` returns early (status > 128) when a trapped signal arrives; the child is still running.
  kill -0 "$child" 2>/dev/null || break
done
case "$alerts" in
  ""|-|off) ;;
  *) [ -f "$alerts" ] && cp "$alerts" "$run.alerts" ;;
esac
exit "$status"
