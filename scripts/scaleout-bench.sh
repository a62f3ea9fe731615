#!/usr/bin/env bash
# What scale-out costs: one hub process vs 2 and 3 processes joined by one
# Redis and by a three-shard Redis Cluster, broadcast and group traffic
# (tests/src/bin/scaleout-bench.rs says what is measured). Needs
# redis-server and redis-cli (scripts/test.sh installs them). A few minutes:
#
#   scripts/scaleout-bench.sh [--messages N] [--burst N] [--receivers R]
#
# Prints a Markdown table; bench/RESULTS.md keeps the latest one.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p hub-tests --bin conformance-server --bin scaleout-bench
exec target/release/scaleout-bench "$@"
