#!/usr/bin/env bash
# Installs what building and testing Nigehban needs on Debian/Ubuntu, only where it is missing:
# libpcap and Hyperscan (headers + pkg-config files), a C toolchain, and the tools the tests drive
# (iproute2 for network namespaces, python3 for test peers, ethtool; GNU time for the memory bench;
# rsyslog with its OpenSSL TLS driver as the real syslog receiver of the output tests;
# curl, dig, dnsmasq and aiosmtpd as the real clients and servers of tests/real_programs.rs).
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in libpcap-dev libhyperscan-dev pkg-config gcc iproute2 python3 ethtool time rsyslog rsyslog-openssl \
  curl bind9-dnsutils dnsmasq-base python3-aiosmtpd; do
  have_pkg "$p" || need+=("$p")
done
# prometheus (and its promtool) scrapes the sensor in tests/prometheus.rs
have_pkg prometheus || need+=(prometheus)
have_pkg logrotate || need+=(logrotate)   # tests/ops.rs runs the shipped logrotate snippet
# tcpreplay feeds benches/live_rate.rs (live capture rate and packet-to-alert latency).
have_pkg tcpreplay || need+=(tcpreplay)
# libFuzzer, which libfuzzer-sys compiles for deploy/fuzz-smoke.sh, is C++.
have_pkg g++ || need+=(g++)
if ((${#need[@]})); then
  echo "nigehban setup: installing ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "nigehban setup: cargo not found; install Rust (https://rustup.rs) and re-run" >&2
  exit 1
fi
