#!/usr/bin/env bash
# CPU instructions per cache hit, counted by callgrind: a figure that other
# work on a shared machine does not move, unlike requests/s.
#   BEFORE_BIN=/path/to/other/widget-data bash bench/hit_instructions.sh
# Needs valgrind and wrk. Counts user-space instructions only (the kernel's
# share of a request is not in them), over DUR seconds of hits on one
# connection after a warm-up, for this checkout's release build and then,
# if given, BEFORE_BIN, both serving the same embedded cluster.
# The measured builds run in their default configuration, access log and
# all (written to a file, as a service's output usually is); set RUST_LOG
# or ACCESS_LOG to measure another. KEEP=dir keeps the callgrind files.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-5}
# Three loopback ports from here (several runs at once need their own).
PORT=${PORT:-18200}
TARGET=${CARGO_TARGET_DIR:-target}
command -v valgrind >/dev/null || { echo "bench: install valgrind"; exit 1; }
command -v wrk >/dev/null || { echo "bench: install wrk (apt-get install wrk)"; exit 1; }

cargo build --release --quiet --bin widget-data
bin=${WIDGET_DATA_BIN:-$TARGET/release/widget-data}
work=$(mktemp -d /tmp/wd-instr.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# One token, thousands of requests a second: the rate limit stays on, but
# this high it never refuses (a 429 would be counted as if it were a hit).
export RATE_LIMIT_PER_SEC=100000000 RATE_LIMIT_BURST=100000000
# The host of the cluster; not measured.
DATA_DIR=$work LISTEN_ADDR=127.0.0.1:$PORT RUST_LOG=warn "$bin" >"$work/out.log" 2>&1 &
pids+=($!)
until grep -q "try:" "$work/out.log"; do
  kill -0 "${pids[0]}" 2>/dev/null || { echo "bench: widget-data did not start:"; cat "$work/out.log"; exit 1; }
  sleep 0.2
done
export TOKEN=$(awk '/demo user/ {print $3}' "$work/out.log")
export BODY='{"config":{"table":"servers","aggregation":"count","groupBy":"status"}}'
database_url=$(awk '/database: / {print $2; exit}' "$work/out.log")
secret=$(awk '/dev JWT secret:/ {print $4; exit}' "$work/out.log")

count() { # label binary port
  local out="$work/$3.callgrind" url=http://127.0.0.1:$3/functions/v1/widget-data
  DATABASE_URL=$database_url JWT_SECRET=$secret LISTEN_ADDR=127.0.0.1:$3 \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$2" >"$work/$3.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  until grep -q "listening on" "$work/$3.log"; do
    kill -0 "$pid" 2>/dev/null || { echo "bench: $2 did not start:"; cat "$work/$3.log"; exit 1; }
    sleep 0.5
  done
  wrk -t 1 -c 1 -d 3s -s bench/post.lua "$url" >/dev/null   # warm: the entry is a hit from here on
  callgrind_control -i on "$pid" >/dev/null 2>&1
  local res
  res=$(wrk -t 1 -c 1 -d "${DUR}s" -s bench/post.lua "$url")
  if grep -q "Non-2xx" <<<"$res"; then
    echo "bench: non-2xx answers from $2:" >&2
    echo "$res" >&2
    exit 1
  fi
  callgrind_control -i off "$pid" >/dev/null 2>&1
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  local requests instructions
  requests=$(awk '/requests in/ {print $1}' <<<"$res")
  instructions=$(cat "$out"* | awk '/^totals:/ {s += $2} END {printf "%.0f", s}')
  echo "| $1 | $requests | $instructions | $(( instructions / requests )) |"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  [ -z "${KEEP:-}" ] || cp "$out"* "$KEEP"/
}

echo "| build | hits counted | instructions | per hit |"
echo "|---|---|---|---|"
count "this build ($bin)" "$bin" $((PORT + 1))
[ -z "${BEFORE_BIN:-}" ] || count "before ($BEFORE_BIN)" "$BEFORE_BIN" $((PORT + 2))
