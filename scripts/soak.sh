#!/usr/bin/env bash
# The soak (bench/src/bin/soak.rs says what runs): a mixed load against one
# conformance-server and two conformance-server nodes over a private
# redis-server (free loopback ports, stopped by PID), with RSS, open fds and
# threads sampled from /proc, tokio tasks and connections from GET /metrics. Needs redis-server (scripts/test.sh installs
# it) and fonts-dejavu-core for the chart.
#
#   scripts/soak.sh [--minutes N]      (default 10)
#
# Writes bench/soak/soak.md (figures and verdict), bench/soak/soak.png
# (RSS, fds, tokio tasks, threads over time) and bench/soak/samples.csv. Not part of the
# test command.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p hub-tests --bin conformance-server -p hub-bench --bin soak
exec target/release/soak --out bench/soak "$@"
