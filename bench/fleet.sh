#!/usr/bin/env bash
# A local fleet, measured: a PostgreSQL primary, one streaming replica,
# Redis and three widget-data instances, all on loopback (PostgreSQL on
# unix sockets), driven by examples/fleet.rs (dashboard reads spread over
# the instances, 2 writes a second on the primary, every answer checked
# against a log of the writes). Prints markdown tables, one per phase:
#   1. main:          warming on, replicas on
#   2. join:          the same fleet plus a fourth instance that has served
#                     nothing yet: its first JOIN_REQUESTS requests
#   3. warming-off:   the three restarted with CACHE_WARMING_WORKERS=0
#   4. replicas-off:  the three restarted without DATABASE_READ_URLS
# and then the targets, met or missed.
#
#   bash bench/fleet.sh
#   DUR=20 WARMUP=3 CONNS=16 WRITES_PER_SEC=2 JOIN_DUR=6 JOIN_REQUESTS=100
#   WIDGET_DATA_BIN=path   measure that binary instead of this checkout's
#   PG_CONF='name = value' more postgresql.conf lines for the primary (and
#                          so the standby), e.g. 'wal_writer_delay = 10ms'
#
# Needs the PostgreSQL server binaries (apt-get install postgresql) and
# redis-server (apt-get install redis-server). As root, PostgreSQL runs as
# the `postgres` user. Everything it starts is stopped on exit, even on
# failure, and its temporary directory removed; KEEP=1 keeps the
# directory (logs) and says where.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-20}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-16}
WRITES_PER_SEC=${WRITES_PER_SEC:-2}
JOIN_DUR=${JOIN_DUR:-6}
JOIN_REQUESTS=${JOIN_REQUESTS:-100}
TARGET=${CARGO_TARGET_DIR:-target}
PGBIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "fleet: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "fleet: install redis-server (apt-get install redis-server)" >&2; exit 1; }
say() { echo "fleet: $*" >&2; }

# Two builds: the measured binary is what `cargo build --release` makes (an
# example would bring the dev-dependencies' features into it).
cargo build --release --quiet --bin widget-data
cargo build --release --quiet --example fleet
bin=${WIDGET_DATA_BIN:-$TARGET/release/widget-data}
driver=$TARGET/release/examples/fleet

work=$(mktemp -d /tmp/wd-fleet.XXXXXX)
chmod 755 "$work"   # the postgres user reaches its directories inside
as_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || { echo "fleet: as root, PostgreSQL runs as the postgres user, which does not exist" >&2; exit 1; }
  as_pg=(runuser -u postgres --)
fi
instance_pids=()
instance_urls=()
redis_pid=
driver_pid=
clusters=()
stop_instances() {
  [ ${#instance_pids[@]} = 0 ] || kill "${instance_pids[@]}" 2>/dev/null || true
  for pid in "${instance_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  instance_pids=()
  instance_urls=()
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  [ -z "$driver_pid" ] || { kill "$driver_pid" 2>/dev/null || true; wait "$driver_pid" 2>/dev/null || true; }
  stop_instances
  [ -z "$redis_pid" ] || { kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; }
  # The standby first: stopped after the primary, it would complain.
  for ((i = ${#clusters[@]} - 1; i >= 0; i--)); do
    dir=${clusters[i]}
    [ -f "$dir/postmaster.pid" ] || continue
    "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir" -m fast -w -t 30 stop >/dev/null 2>&1 || {
      # A server that will not stop in time is not left behind.
      kill -9 "$(head -1 "$dir/postmaster.pid")" 2>/dev/null || true
    }
  done
  if [ "$status" != 0 ]; then
    for log in "$work"/*.log; do
      [ -f "$log" ] || continue
      echo "--- $(basename "$log") (tail)" >&2
      tail -n 15 "$log" >&2
    done
  fi
  if [ -n "${KEEP:-}" ]; then say "kept $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port nothing listens on (nor was handed out here before).
given=" "
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    [[ $given == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      given+="$p "
      REPLY=$p
      return
    fi
  done
}

# --- PostgreSQL: the primary on a unix socket, with a password --------------
password=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export PGPASSWORD=$password PGUSER=postgres
mkdir -m 700 "$work/primary" "$work/primary-socket" "$work/standby" "$work/standby-socket" "$work/initdb"
printf '%s\n' "$password" >"$work/initdb/pwfile"
touch "$work/primary.log" "$work/standby.log"
[ ${#as_pg[@]} = 0 ] || chown -R postgres: "$work/primary" "$work/primary-socket" "$work/standby" \
  "$work/standby-socket" "$work/initdb" "$work/primary.log" "$work/standby.log"
say "initdb"
"${as_pg[@]}" "$PGBIN/initdb" -D "$work/primary" -U postgres --auth=scram-sha-256 \
  --pwfile="$work/initdb/pwfile" -E UTF8 --locale=C >"$work/initdb.log" 2>&1
rm -rf "$work/initdb"
# initdb's pg_hba.conf already asks every local and loopback connection,
# replication included, for the password. Four instances' pools need more
# than the default 100 connections; a standby needs at least as many.
cat >>"$work/primary/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$work/primary-socket'
unix_socket_permissions = 0700
wal_level = replica
max_wal_senders = 4
max_connections = 300
${PG_CONF:-}
EOF
clusters+=("$work/primary")
"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$work/primary" -l "$work/primary.log" -w -t 60 start >/dev/null
"$PGBIN/psql" -h "$work/primary-socket" -d postgres -qc "CREATE DATABASE widget_data"
primary_url="postgres://postgres:$password@127.0.0.1/widget_data?host=$work/primary-socket"
replica_url="postgres://postgres:$password@127.0.0.1/widget_data?host=$work/standby-socket"

# --- Redis ------------------------------------------------------------------
free_port
redis_port=$REPLY
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!
until (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; do
  kill -0 "$redis_pid" 2>/dev/null || { say "redis-server did not start"; exit 1; }
  sleep 0.1
done

# --- widget-data instances --------------------------------------------------
JWT_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export JWT_SECRET
# start_instance <name> [VAR=value ...]: one instance on a fresh loopback
# port, logging to a file of its own (<name>-<n>.log).
starts=0
start_instance() {
  local name=$1
  shift
  free_port
  starts=$((starts + 1))
  local out="$work/$name-$starts.log"
  mkdir -p "$work/$name"
  env DATABASE_URL="$primary_url" LISTEN_ADDR="127.0.0.1:$REPLY" DATA_DIR="$work/$name" \
    REDIS_URL="redis://127.0.0.1:$redis_port" RATE_LIMIT_PER_SEC=0 ACCESS_LOG=off SEED=false \
    "$@" "$bin" >"$out" 2>&1 &
  instance_pids+=($!)
  local pid=$!
  until grep -qs "listening on" "$out"; do
    kill -0 "$pid" 2>/dev/null || { say "$name did not start"; exit 1; }
    sleep 0.1
  done
  instance_urls+=("http://127.0.0.1:$REPLY")
}
# start_fleet [VAR=value ...]: three instances, each with these settings.
start_fleet() {
  for i in 1 2 3; do start_instance "instance$i" "$@"; done
}

say "migrations and seed (a first instance with SEED=true)"
start_instance seed SEED=true
stop_instances

# --- the standby: pg_basebackup -R, streaming from the primary --------------
say "pg_basebackup"
"${as_pg[@]}" "$PGBIN/pg_basebackup" -D "$work/standby" \
  -h "$work/primary-socket" -U postgres -w -R -X stream -c fast --no-manifest
cat >>"$work/standby/postgresql.conf" <<EOF
unix_socket_directories = '$work/standby-socket'
EOF
clusters+=("$work/standby")
"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$work/standby" -l "$work/standby.log" -w -t 60 start >/dev/null
[ "$("$PGBIN/psql" -h "$work/standby-socket" -d widget_data -Atc 'SELECT pg_is_in_recovery()')" = t ] \
  || { say "the standby is not in recovery"; exit 1; }

log=$work/writes.jsonl
summary=$work/summary.jsonl
run() { # phase label [driver args...]
  local phase=$1 label=$2
  shift 2
  local urls
  urls=$(IFS=,; echo "${instance_urls[*]:0:3}")
  # In the background, waited for: a signal then stops everything at once,
  # not when the driver is done.
  DATABASE_URL=$primary_url DATABASE_READ_URL=$replica_url "$driver" load --phase "$phase" --label "$label" \
    --instances "$urls" --log "$log" --summary "$summary" --conns "$CONNS" \
    --writes-per-sec "$WRITES_PER_SEC" "$@" &
  driver_pid=$!
  wait "$driver_pid"
  driver_pid=
}

echo "## Fleet: 3 instances, a primary and a streaming replica, Redis"
echo
echo "\`$(printf '%s ' DUR="$DUR" WARMUP="$WARMUP" CONNS="$CONNS" WRITES_PER_SEC="$WRITES_PER_SEC" JOIN_DUR="$JOIN_DUR" JOIN_REQUESTS="$JOIN_REQUESTS")${PG_CONF:+PG_CONF='$PG_CONF' }bash bench/fleet.sh\` at $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ)."
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), Redis $(redis-server --version | awk '{print $3}' | tr -d 'v='); driver, instances, PostgreSQL and Redis share the cores."
echo

say "phase 1: warming on, replicas on"
start_fleet DATABASE_READ_URLS="$replica_url"
run main "Warming on, replicas on" --dur "$DUR" --warmup "$WARMUP"

say "phase 2: a fourth instance joins"
start_instance instance4 DATABASE_READ_URLS="$replica_url"
run join "A fourth instance joins (warming on, replicas on)" --dur "$JOIN_DUR" --warmup 1 \
  --join "${instance_urls[3]}" --join-after 1 --join-requests "$JOIN_REQUESTS"
stop_instances

say "phase 3: warming off"
start_fleet DATABASE_READ_URLS="$replica_url" CACHE_WARMING_WORKERS=0
run warming-off "Warming off (CACHE_WARMING_WORKERS=0), replicas on" --dur "$DUR" --warmup "$WARMUP"
stop_instances

say "phase 4: replicas off"
start_fleet
run replicas-off "Warming on, replicas off (no DATABASE_READ_URLS)" --dur "$DUR" --warmup "$WARMUP"
stop_instances

"$driver" report --summary "$summary"
# What the instances logged at WARN or above, for a look.
warnings=$(cat "$work"/instance*.log | grep -cE ' (WARN|ERROR) ' || true)
echo "Instance log lines at WARN or ERROR: $warnings."
cat "$work"/instance*.log | grep -E ' (WARN|ERROR) ' | sed -E 's/\x1b\[[0-9;]*m//g; s/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -5 || true
