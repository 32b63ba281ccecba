#!/usr/bin/env bash
# Widget bundles (issue 12): registration latency and serving throughput.
#   bash bench/bundles.sh          (N registrations, default 20; DUR s of wrk)
# Needs wrk, python3 and nginx (apt-get install wrk nginx). Everything runs
# on loopback: a python origin serves the bundles, widget-data pins them
# (embedded cluster, local blob store), nginx serves the same 200 KB file
# with the same headers from the same disk as the ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20}
DUR=${DUR:-10}
TARGET=${CARGO_TARGET_DIR:-target}
for tool in wrk python3 nginx; do
  command -v "$tool" >/dev/null || { echo "bench: install $tool"; exit 1; }
done

cargo build --release --quiet --bin widget-data
bin=${WIDGET_DATA_BIN:-$TARGET/release/widget-data}
work=$(mktemp -d /tmp/wd-bundles.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Distinct clean bundles (each registration does the whole work: nothing
# to reuse), about 500 KB each, and one of 200 KB for serving.
mkdir -p "$work/origin"
python3 - "$work/origin" "$N" <<'PY'
import sys
out, n = sys.argv[1], int(sys.argv[2])
def bundle(tag, size):
    parts, i = [f"// bundle {tag}\n"], 0
    while sum(map(len, parts)) < size:
        parts.append(f"export function render{i}(el, data) {{ const rows = data.map((r) => r.value * {i}); "
                     f"el.textContent = 'widget {tag} ' + rows.join(', '); return rows.length; }}\n")
        i += 1
    return "".join(parts)
for k in range(n):
    open(f"{out}/b{k}.js", "w").write(bundle(k, 495 * 1024))
open(f"{out}/serve.js", "w").write(bundle("serve", 200 * 1024))
PY
(cd "$work/origin" && exec python3 -m http.server 18491 --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)

export RATE_LIMIT_PER_SEC=100000000 RATE_LIMIT_BURST=100000000
DATA_DIR=$work/data LISTEN_ADDR=127.0.0.1:18490 BUNDLE_ALLOW_HOSTS=127.0.0.1 \
  BUNDLE_AUTO_APPROVE=true "$bin" >"$work/out.log" 2>&1 &
pids+=($!)
until grep -q "try:" "$work/out.log"; do
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "bench: widget-data did not start:"; cat "$work/out.log"; exit 1; }
  sleep 0.2
done
token=$(awk '/demo user/ {print $3}' "$work/out.log")
api=http://127.0.0.1:18490
origin=http://127.0.0.1:18491

register() { # version file
  curl -s -o "$work/reg.json" -w '%{http_code} %{time_total}\n' "$api/functions/v1/widget-bundles" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "{\"bundle_id\":\"bench\",\"version\":\"$1\",\"url\":\"$origin/$2\"}"
}
# The origin's own time for the same bytes, to take out of the total.
fetch_time() { curl -s -o /dev/null -w '%{time_total}\n' "$origin/$1"; }

echo "## registration of a 500 KB bundle (fetch + hash + store + analyse + record), $N runs"
: >"$work/times"
for k in $(seq 0 $((N - 1))); do
  read -r code total < <(register "1.0.$k" "b$k.js")
  [ "$code" = 201 ] || { echo "bench: registration answered $code:"; cat "$work/reg.json"; exit 1; }
  own=$(fetch_time "b$k.js")
  awk -v t="$total" -v o="$own" 'BEGIN { printf "%.1f\n", (t - o) * 1000 }' >>"$work/times"
done
sort -g "$work/times" | awk '{ v[NR] = $1 } END {
  printf "| p50 | %.1f ms |\n| p99 | %.1f ms |\n| max | %.1f ms |\n", v[int((NR + 1) / 2)], v[int(NR * 0.99 + 0.99)], v[NR] }'

echo
echo "## serving a 200 KB bundle at 32 connections: widget-data vs nginx"
read -r code _ < <(register "2.0.0" serve.js)
[ "$code" = 201 ] || { echo "bench: registration answered $code"; exit 1; }
grep -q '"status":"approved"' "$work/reg.json" || { echo "bench: not approved:"; cat "$work/reg.json"; exit 1; }
sha=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$work/reg.json")
ours=$api/widgets/bench/v2.0.0/bundle.js
curl -s -o "$work/served.js" "$ours"
cmp -s "$work/served.js" "$work/origin/serve.js" || { echo "bench: served bytes differ"; exit 1; }

# nginx: the same file from the same disk, the same headers.
mkdir -p "$work/nginx/logs" "$work/www"
cp "$work/origin/serve.js" "$work/www/bundle.js"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  etag off;
  types { text/javascript js; }
  charset utf-8;
  charset_types text/javascript;
  server {
    listen 127.0.0.1:18492;
    root $work/www;
    location / {
      add_header Cache-Control "public, max-age=31536000, immutable";
      add_header ETag "\"$sha\"";
      add_header X-Content-Type-Options nosniff;
      add_header Access-Control-Allow-Origin *;
      add_header Vary Accept-Encoding;
    }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
sleep 1
theirs=http://127.0.0.1:18492/bundle.js
curl -sf -o /dev/null "$theirs" || { echo "bench: nginx does not serve:"; cat "$work/nginx/logs/error.log"; exit 1; }

rps() { wrk -t 2 -c 32 -d "${DUR}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
: >"$work/ours"; : >"$work/theirs"
for _ in 1 2 3; do
  rps "$ours" >>"$work/ours"
  rps "$theirs" >>"$work/theirs"
done
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
o=$(median <"$work/ours"); n=$(median <"$work/theirs")
echo "| server | requests/s (median of 3) |"
echo "|---|---|"
echo "| widget-data | $o |"
echo "| nginx | $n |"
awk -v a="$o" -v b="$n" 'BEGIN { printf "widget-data / nginx: %.2f\n", a / b }'
