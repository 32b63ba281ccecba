#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md on this machine:
#   bash bench/run.sh            (DUR=seconds per run, default 10)
#   WIDGET_DATA_BIN=path         measure that binary instead of this checkout's
#   BEFORE_BIN=path              also measure hits of another build (say,
#                                main's) on the same database, alternating
#   HITS_ONLY=1                  stop after the cache hits
#   WRITES_ONLY=1                only the writes with and without change
#                                triggers (with WIDGET_DATA_BIN: no build)
# The servers run in their default configuration, access log included
# (written to a file, as a service's output usually is): set RUST_LOG or
# ACCESS_LOG to measure a quieter one.
# Needs wrk (apt-get install wrk) and the PostgreSQL binaries (pgbench).
# Everything runs on loopback against a throwaway embedded cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10}
# Each figure is the median of REPS runs, the two servers (or trigger
# states) alternating, so drift on a shared machine hits both alike.
REPS=${REPS:-3}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
command -v wrk >/dev/null || { echo "bench: install wrk (apt-get install wrk)"; exit 1; }

if [ -z "${WRITES_ONLY:-}" ]; then
  cargo build --release --quiet --bin widget-data --example bare_handler
elif [ -z "${WIDGET_DATA_BIN:-}" ]; then
  cargo build --release --quiet --bin widget-data
fi
bin=${WIDGET_DATA_BIN:-$TARGET/release/widget-data}
work=$(mktemp -d /tmp/wd-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# One token sends tens of thousands of requests a second here: the rate
# limit stays on (its check is part of every hit) but this high it never
# answers 429, which would measure the refusal instead of the hit.
export RATE_LIMIT_PER_SEC=100000000 RATE_LIMIT_BURST=100000000
DATA_DIR=$work LISTEN_ADDR=127.0.0.1:18080 "$bin" >"$work/out.log" 2>&1 &
pids+=($!)
until grep -q "try:" "$work/out.log"; do
  kill -0 "${pids[0]}" 2>/dev/null || { echo "bench: widget-data did not start:"; cat "$work/out.log"; exit 1; }
  sleep 0.2
done
export TOKEN=$(awk '/demo user/ {print $3}' "$work/out.log")
PG=(-h "$work/postgres" -U postgres)
export PGPASSWORD=$(cat "$work/postgres/widget-data.password")
QUERY='{"table":"servers","aggregation":"count","groupBy":"status"}'
url=http://127.0.0.1:18080/functions/v1/widget-data

# wrk's summary as: requests/s p50 p99 avg
measure() { # connections url
  local out
  out=$(wrk -t "$(( $1 < 2 ? 1 : 2 ))" -c "$1" -d "${DUR}s" --latency -s bench/post.lua "$2")
  # Every answer must be a 200: refusals would be measured as if served.
  if grep -q "Non-2xx" <<<"$out"; then
    echo "bench: non-2xx answers from $2:" >&2
    echo "$out" >&2
    exit 1
  fi
  printf '%s %s %s %s\n' \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1 == "50%" {print $2}' <<<"$out")" \
    "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
    "$(awk '$1 == "Latency" {print $2; exit}' <<<"$out")"
}
# The line (of `measure` output) with the median requests/s.
median() { sort -g | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'; }

if [ -z "${WRITES_ONLY:-}" ]; then
  echo "## cache hits vs a bare handler (same JWT check, same bytes)"
  export BODY="{\"config\":$QUERY}"
  curl -s "$url" -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d "$BODY" >/dev/null   # fill
  curl -s "$url" -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d "$BODY" >"$work/hit.json"
  grep -q '"cached":true' "$work/hit.json" || { echo "bench: the second request was not a hit"; exit 1; }
  "$TARGET"/release/examples/bare_handler 127.0.0.1:18090 "$work/hit.json" &
  pids+=($!)
  before_url=
  if [ -n "${BEFORE_BIN:-}" ]; then
    # The other build serves the same cluster with the same (dev) secret.
    DATABASE_URL=$(awk '/database: / {print $2; exit}' "$work/out.log") \
      JWT_SECRET=$(awk '/dev JWT secret:/ {print $4; exit}' "$work/out.log") \
      LISTEN_ADDR=127.0.0.1:18082 "$BEFORE_BIN" >"$work/before.log" 2>&1 &
    pids+=($!)
    until grep -qs "listening on" "$work/before.log"; do
      kill -0 "${pids[-1]}" 2>/dev/null || { echo "bench: $BEFORE_BIN did not start:"; cat "$work/before.log"; exit 1; }
      sleep 0.2
    done
    before_url=http://127.0.0.1:18082/functions/v1/widget-data
    curl -s "$before_url" -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d "$BODY" >/dev/null   # fill its memory level
    curl -s "$before_url" -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d "$BODY" | grep -q '"cached":true' \
      || { echo "bench: the before build's second request was not a hit"; exit 1; }
  fi
  sleep 0.5
  echo "| server | connections | requests/s | p50 | p99 |"
  echo "|---|---|---|---|---|"
  for c in 1 32; do
    : >"$work/ours" ; : >"$work/bare" ; : >"$work/before"
    for _ in $(seq "$REPS"); do
      measure "$c" "$url" >>"$work/ours"
      measure "$c" http://127.0.0.1:18090/functions/v1/widget-data >>"$work/bare"
      [ -z "$before_url" ] || measure "$c" "$before_url" >>"$work/before"
    done
    read -r ours p50 p99 _ < <(median <"$work/ours")
    echo "| widget-data (hit) | $c | $ours | $p50 | $p99 |"
    if [ -n "$before_url" ]; then
      read -r before p50 p99 _ < <(median <"$work/before")
      echo "| before: $BEFORE_BIN (hit) | $c | $before | $p50 | $p99 |"
      awk -v a="$ours" -v b="$before" -v c="$c" 'BEGIN { printf "hits/before at %d connections: %.1f%%\n", c, 100 * a / b }'
    fi
    read -r bare p50 p99 _ < <(median <"$work/bare")
    echo "| bare handler | $c | $bare | $p50 | $p99 |"
    awk -v a="$ours" -v b="$bare" -v c="$c" 'BEGIN { printf "hits/bare at %d connections: %.1f%%\n", c, 100 * a / b }'
  done

  [ -z "${HITS_ONLY:-}" ] || exit 0

  echo
  echo "## a miss beside the raw SQL (1 connection)"
  export BODY="{\"config\":$QUERY,\"force_refresh\":true}"
  read -r rps p50 p99 avg < <(measure 1 "$url")
  echo "| widget-data miss (force_refresh) | avg $avg | p50 $p50 | p99 $p99 |"
  echo "SELECT status, count(*) FROM servers GROUP BY status;" >"$work/q.sql"
  raw=$("$BIN/pgbench" "${PG[@]}" -n -f "$work/q.sql" -c 1 -T "$DUR" postgres 2>/dev/null | awk '/latency average/ {print $4 " " $5}')
  echo "| raw SQL (pgbench, prepared: no) | avg $raw | | |"

fi
echo
echo "## single-row inserts into servers (pgbench, 4 clients, 2 threads)"
echo "INSERT INTO servers (hostname, status, region) VALUES ('bench', 'Ready', 'eu-west-1');" >"$work/insert.sql"
sql() { "$BIN/psql" "${PG[@]}" -q -c "$1" postgres >/dev/null; }
# Each run starts from an empty table and a fresh checkpoint: a growing
# table and a checkpoint landing in one run but not another are the
# noise otherwise.
tps() {
  sql "TRUNCATE servers"; sql "CHECKPOINT"
  "$BIN/pgbench" "${PG[@]}" -n -f "$work/insert.sql" -c 4 -j 2 -T "$DUR" postgres 2>/dev/null | awk '/^tps/ {print $3}'
}
# The floor of any statement trigger written in PL/pgSQL: one that does
# nothing, in place of ours.
sql "CREATE FUNCTION public.bench_empty_trigger() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RETURN NULL; END \$\$"
ours() { sql "SELECT app.install_change_triggers(ARRAY['public'])" 2>/dev/null; }
none() { sql "DROP TRIGGER widget_data_changed ON public.servers"; }
empty() {
  sql "CREATE TRIGGER widget_data_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON public.servers
       FOR EACH STATEMENT EXECUTE FUNCTION public.bench_empty_trigger()"
}
: >"$work/with" ; : >"$work/without" ; : >"$work/empty"
for _ in $(seq "$REPS"); do
  tps >>"$work/with"
  none; tps >>"$work/without"
  empty; tps >>"$work/empty"
  none; ours
done
with=$(median <"$work/with")
without=$(median <"$work/without")
empty_tps=$(median <"$work/empty")
# Writes while a dashboard keeps re-reading (force_refresh, ~20 times/s,
# the same load with and without triggers): each refill watches servers
# again, so the next write is announced and the watch waits out writes in
# flight.
export BODY="{\"config\":$QUERY,\"force_refresh\":true}"
( while :; do curl -s "$url" -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" -d "$BODY" >/dev/null; sleep 0.05; done ) &
reader=$!
: >"$work/polled_with" ; : >"$work/polled_without"
for _ in $(seq "$REPS"); do
  tps >>"$work/polled_with"
  none; tps >>"$work/polled_without"
  ours
done
kill "$reader"; wait "$reader" 2>/dev/null || true
polled_with=$(median <"$work/polled_with")
polled_without=$(median <"$work/polled_without")
echo "| change triggers | tps |"
echo "|---|---|"
echo "| with | $with |"
echo "| without | $without |"
echo "| an empty PL/pgSQL statement trigger instead | $empty_tps |"
echo "| with, a reader refilling ~20 times/s | $polled_with |"
echo "| without, the same reader | $polled_without |"
awk -v a="$with" -v b="$without" 'BEGIN { printf "with/without: %.1f%%\n", 100 * a / b }'
awk -v a="$empty_tps" -v b="$without" 'BEGIN { printf "empty trigger/without: %.1f%%\n", 100 * a / b }'
awk -v a="$polled_with" -v b="$polled_without" 'BEGIN { printf "with a reader, with/without: %.1f%%\n", 100 * a / b }'
