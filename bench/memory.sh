#!/usr/bin/env bash
# The memory bound of the in-process cache level under a flood of distinct
# large answers: the figures of BENCHMARKS.md's "Cache memory" section.
#   bash bench/memory.sh                 (N answers, default 400)
#   WIDGET_DATA_BIN=/path/to/widget-data bash bench/memory.sh
# Each answer is about 650 KB (5,000 rows of hostname, region, status and
# a count); each is asked twice, so it is stored and then hit (a hit
# renders the body kept with the entry). Reports the service's RSS idle,
# after every 100 answers, and what the cache counts.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-400}
MB=${CACHE_MEMORY_MB:-64}
if [ -z "${WIDGET_DATA_BIN:-}" ]; then
  cargo build --release --quiet --bin widget-data
  WIDGET_DATA_BIN=${CARGO_TARGET_DIR:-target}/release/widget-data
fi
work=$(mktemp -d /tmp/wd-memory.XXXXXX)
chmod 755 "$work"
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

DATA_DIR=$work LISTEN_ADDR=127.0.0.1:18082 RUST_LOG=warn RATE_LIMIT_PER_SEC=0 \
  CACHE_MEMORY_MB=$MB "$WIDGET_DATA_BIN" >"$work/out.log" 2>&1 &
pid=$!
until grep -q "try:" "$work/out.log"; do
  kill -0 "$pid" 2>/dev/null || { echo "bench: widget-data did not start:"; cat "$work/out.log"; exit 1; }
  sleep 0.2
done
TOKEN=$(awk '/demo user/ {print $3}' "$work/out.log")
SERVICE=$(awk '/service_role/ {print $2}' "$work/out.log")
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }
url=http://127.0.0.1:18082/functions/v1/widget-data
ask() {
  curl -sf "$url" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"config\":{\"table\":\"servers\",\"groupBy\":[\"id\",\"hostname\",\"region\",\"status\",\"created_at\"],\"limit\":10000,\"filters\":[{\"column\":\"id\",\"op\":\"gt\",\"value\":$((0 - $1))}]}}" \
    -o /dev/null -w '%{size_download}\n'
}
sleep 1
idle=$(rss_mb)
size=$(ask 0)
echo "service: $WIDGET_DATA_BIN"
echo "answer size: $size bytes; CACHE_MEMORY_MB=$MB; idle RSS: $idle MB; bound 1.3 x ($MB + $idle) = $(awk -v m="$MB" -v i="$idle" 'BEGIN { printf "%.1f", 1.3 * (m + i) }') MB"
echo "| answers | RSS MB | cache bytes (counted) | entries |"
echo "|---|---|---|---|"
peak=0
for i in $(seq 1 "$N"); do
  ask "$i" >/dev/null
  ask "$i" >/dev/null
  r=$(rss_mb)
  peak=$(awk -v a="$peak" -v b="$r" 'BEGIN { print (b > a) ? b : a }')
  if [ $((i % 100)) -eq 0 ]; then
    stats=$(curl -sf http://127.0.0.1:18082/functions/v1/widget-data/stats -H "Authorization: Bearer $SERVICE")
    printf '| %s | %s | %s | %s |\n' "$i" "$r" \
      "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["bytes"])' "$stats")" \
      "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["entries"])' "$stats")"
  fi
done
echo "peak RSS: $peak MB"
