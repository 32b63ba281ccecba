#!/usr/bin/env bash
# Another user's `GET /rest/v1/dashboards` while one user owns ROWS
# dashboards (default 500,000): the figure of BENCHMARKS.md's "Noisy
# neighbours" section.
#   bash bench/neighbours.sh            (DUR=seconds, default 10)
#   WIDGET_DATA_BIN=/path/to/widget-data bash bench/neighbours.sh
# Needs wrk (apt-get install wrk) and the PostgreSQL binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10}
ROWS=${ROWS:-500000}
PGBIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
command -v wrk >/dev/null || { echo "bench: install wrk (apt-get install wrk)"; exit 1; }
if [ -z "${WIDGET_DATA_BIN:-}" ]; then
  cargo build --release --quiet --bin widget-data
  WIDGET_DATA_BIN=${CARGO_TARGET_DIR:-target}/release/widget-data
fi
work=$(mktemp -d /tmp/wd-neighbours.XXXXXX)
chmod 755 "$work"
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

DATA_DIR=$work LISTEN_ADDR=127.0.0.1:18081 RUST_LOG=warn RATE_LIMIT_PER_SEC=0 \
  "$WIDGET_DATA_BIN" >"$work/out.log" 2>&1 &
pid=$!
until grep -q "try:" "$work/out.log"; do
  kill -0 "$pid" 2>/dev/null || { echo "bench: widget-data did not start:"; cat "$work/out.log"; exit 1; }
  sleep 0.2
done
TOKEN=$(awk '/demo user/ {print $3}' "$work/out.log")
PSQL=("$PGBIN/psql" -q -h "$work/postgres" -U postgres postgres)
export PGPASSWORD=$(cat "$work/postgres/widget-data.password")
# The heavy user is not the demo user, who keeps the one seeded dashboard.
"${PSQL[@]}" -c "INSERT INTO app.dashboards (owner_id, name)
  SELECT '11111111-1111-4111-8111-111111111111', 'heavy ' || g FROM generate_series(1, $ROWS) g;
  ANALYZE app.dashboards;"
url=http://127.0.0.1:18081/rest/v1/dashboards
curl -sf "$url" -H "Authorization: Bearer $TOKEN" >/dev/null
out=$(wrk -t 2 -c 4 -d "${DUR}s" --latency --timeout 10s -H "Authorization: Bearer $TOKEN" "$url")
echo "| rows of the heavy user | requests/s | p50 | p99 |"
echo "|---|---|---|---|"
printf '| %s | %s | %s | %s |\n' "$ROWS" \
  "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
  "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
  "$(awk '$1 == "99%" {print $2}' <<<"$out")"
