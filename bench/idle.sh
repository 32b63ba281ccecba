#!/usr/bin/env bash
# What idle connections cost (the "Idle connections" figures of
# BENCHMARKS.md):
#   bash bench/idle.sh                 (CONNS=10000, MODE=request|idle)
#   WIDGET_DATA_BIN=/path/to/widget-data bash bench/idle.sh   (another build)
# Starts widget-data on a throwaway embedded cluster, with timeouts long
# enough that the server keeps every connection for the whole run, then
# examples/idle_conns.rs holds CONNS connections open, probes /health while
# they are held, closes them and watches the server's memory come back.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-10000}
MODE=${MODE:-request}
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet --bin widget-data --example idle_conns
bin=${WIDGET_DATA_BIN:-$TARGET/release/widget-data}
work=$(mktemp -d /tmp/wd-idle.XXXXXX)
chmod 755 "$work"
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Both processes hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)"
DATA_DIR=$work LISTEN_ADDR=127.0.0.1:18081 RUST_LOG=warn \
  HTTP_HEADER_TIMEOUT_SECS=3600 MAX_CONNECTIONS=$((CONNS + 1000)) \
  "$bin" >"$work/out.log" 2>&1 &
pid=$!
until grep -q "try:" "$work/out.log"; do
  kill -0 "$pid" 2>/dev/null || { echo "idle: widget-data did not start:"; cat "$work/out.log"; exit 1; }
  sleep 0.2
done
echo "binary: $bin"
"$TARGET"/release/examples/idle_conns 127.0.0.1:18081 "$pid" "$CONNS" "$MODE"
