#!/usr/bin/env bash
# The durable-throughput comparison of docs/PERFORMANCE.md, in one run:
# enqueue 10,000 no-op jobs into SQLite (WAL, synchronous NORMAL), then
# process them all — the engine (32 robots, benches/store.rs
# `backlog_10k`) and apalis 1.0 on apalis-sqlite (peers/apalis, its own
# workspace: it builds on another SQLite binding), at apalis's default
# fetch batch and at 100.
#
#   scripts/compare-apalis.sh            # ROUNDS=3 apalis rounds (about 35 s each)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building both sides"
# Without DATABASE_URL: apalis-sqlite's query macros would check against it.
env -u DATABASE_URL cargo build --release --locked --manifest-path peers/apalis/Cargo.toml --quiet
cargo bench --bench store --no-run --quiet

echo "== rpa (criterion median)"
cargo bench --bench store --quiet -- backlog_10k 2>&1 | grep -E "backlog_10k|time:|thrpt:"

for batch in 10 100; do
  echo "== apalis-sqlite, batch $batch"
  BATCH=$batch ROUNDS="${ROUNDS:-3}" peers/apalis/target/release/apalis-peer
done
