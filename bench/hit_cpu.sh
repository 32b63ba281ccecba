#!/usr/bin/env bash
# CPU time (user + system, from /proc) the server spends per cache hit at
# 32 connections: unlike requests/s it does not fall when other work
# shares the machine, and unlike bench/hit_instructions.sh it counts the
# kernel's share (system calls, waking threads) too.
#   bash bench/hit_cpu.sh [label=binary[:VAR=value,...] ...]
# Without arguments: this checkout's release build. Each build runs in
# turn (ROUNDS times, default 3) against one embedded cluster, in its
# default configuration unless variables are given; the bare handler of
# bench/run.sh is measured too, as the ceiling. DUR seconds per run
# (default 10), C connections (default 32).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10}
C=${C:-32}
ROUNDS=${ROUNDS:-3}
TARGET=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "bench: install wrk (apt-get install wrk)"; exit 1; }
cargo build --release --quiet --bin widget-data --example bare_handler
builds=("$@")
[ ${#builds[@]} -gt 0 ] || builds=("this=$TARGET/release/widget-data")
work=$(mktemp -d /tmp/wd-cpu.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

export RATE_LIMIT_PER_SEC=100000000 RATE_LIMIT_BURST=100000000
# The host of the cluster; not measured.
DATA_DIR=$work LISTEN_ADDR=127.0.0.1:18400 RUST_LOG=warn "$TARGET/release/widget-data" >"$work/host.log" 2>&1 &
pids+=($!)
until grep -q "try:" "$work/host.log"; do
  kill -0 "${pids[0]}" 2>/dev/null || { echo "bench: widget-data did not start:"; cat "$work/host.log"; exit 1; }
  sleep 0.2
done
export TOKEN=$(awk '/demo user/ {print $3}' "$work/host.log")
export BODY='{"config":{"table":"servers","aggregation":"count","groupBy":"status"}}'
database_url=$(awk '/database: / {print $2; exit}' "$work/host.log")
secret=$(awk '/dev JWT secret:/ {print $4; exit}' "$work/host.log")
curl -s http://127.0.0.1:18400/functions/v1/widget-data -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" -d "$BODY" >"$work/hit.json"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU µs per request of process $1 under wrk against $2.
run() {
  local before after res requests
  wrk -t 2 -c "$C" -d 2s -s bench/post.lua "$2" >/dev/null   # warm
  before=$(ticks "$1")
  res=$(wrk -t 2 -c "$C" -d "${DUR}s" -s bench/post.lua "$2")
  after=$(ticks "$1")
  if grep -q "Non-2xx" <<<"$res"; then echo "bench: non-2xx answers from $2:" >&2; echo "$res" >&2; exit 1; fi
  requests=$(awk '/requests in/ {print $1}' <<<"$res")
  awk -v t=$((after - before)) -v n="$requests" -v hz="$(getconf CLK_TCK)" \
    -v rps="$(awk '/Requests\/sec/ {print $2}' <<<"$res")" \
    'BEGIN { printf "%.2f %.0f\n", t * 1e6 / hz / n, rps }'
}

port=18401
declare -A url pid
for spec in "${builds[@]}"; do
  label=${spec%%=*}; rest=${spec#*=}; bin=${rest%%:*}; vars=
  [ "$rest" = "$bin" ] || vars=${rest#*:}
  # shellcheck disable=SC2086
  env DATABASE_URL="$database_url" JWT_SECRET="$secret" LISTEN_ADDR=127.0.0.1:$port ${vars//,/ } \
    "$bin" >"$work/$port.log" 2>&1 &
  pid[$label]=$!
  pids+=($!)
  until grep -qs "listening on" "$work/$port.log"; do
    kill -0 "${pid[$label]}" 2>/dev/null || { echo "bench: $bin did not start:"; cat "$work/$port.log"; exit 1; }
    sleep 0.2
  done
  url[$label]=http://127.0.0.1:$port/functions/v1/widget-data
  port=$((port + 1))
done
"$TARGET"/release/examples/bare_handler 127.0.0.1:18499 "$work/hit.json" &
pid[bare]=$!
pids+=($!)
url[bare]=http://127.0.0.1:18499/functions/v1/widget-data
sleep 0.5
labels=()
for spec in "${builds[@]}"; do labels+=("${spec%%=*}"); done
labels+=(bare)
for _ in $(seq "$ROUNDS"); do
  for l in "${labels[@]}"; do
    echo "$l $(run "${pid[$l]}" "${url[$l]}")" >>"$work/results"
  done
done
echo "| build | CPU µs per hit (median of $ROUNDS) | requests/s (median) |"
echo "|---|---|---|"
for l in "${labels[@]}"; do
  cpu=$(awk -v l="$l" '$1 == l {print $2}' "$work/results" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  rps=$(awk -v l="$l" '$1 == l {print $3}' "$work/results" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
  echo "| $l | $cpu | $rps |"
done
echo
echo "all runs (label, CPU µs per hit, requests/s):"
cat "$work/results"
