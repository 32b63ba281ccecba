#!/usr/bin/env bash
# Fuzzes the running service against its own contract with Schemathesis,
# from the committed openapi/openapi.json, as the seeded demo user and as
# service_role:
#   bash tests/fuzz/run.sh [path to the widget-data binary]
# Runs every check (server errors; responses breaking the documented
# schema, content type, headers or status codes; invalid data accepted;
# missing auth accepted; ...) but one: "schema-valid data is accepted" is
# left out, since the data-source grammar names tables and columns that
# only the live database knows, so a schema-valid body may rightly be
# refused with 400.
set -euo pipefail
bin=$(realpath "${1:-$(dirname "$0")/../../target/debug/widget-data}")
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check schemathesis==4.32.5

work=$(mktemp -d /tmp/widget-data-fuzz.XXXXXX)
chmod 755 "$work"
# The fuzzer is one caller sending thousands of requests a minute: with
# the rate limit on, most would be (documented) 429s and reach nothing.
# The limit has tests of its own (tests/it/limits.rs).
DATA_DIR=$work LISTEN_ADDR=127.0.0.1:0 RUST_LOG=warn RATE_LIMIT_PER_SEC=0 "$bin" >"$work/out.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 240); do
  grep -q "try:" "$work/out.log" && break
  kill -0 $pid 2>/dev/null || { cat "$work/out.log"; exit 1; }
  sleep 0.5
done
url=$(grep -o 'listening on http://[^ ]*' "$work/out.log" | cut -d' ' -f3)

# Every check but "schema-valid data is accepted", as the seeded demo user
# and as service_role (who may write what users may not: global defaults).
# Bundle registration is left out: it fetches the URL it is given, and a
# fuzzer's URLs name hosts on the network (tests/it/bundles.rs and the
# clients register from origins on loopback).
status=0
for who in "demo user" service_role; do
  token=$(awk -v who="$who" '$0 ~ "^ +" who " " {print $NF}' "$work/out.log")
  echo "== schemathesis as $who"
  .venv/bin/schemathesis run ../../openapi/openapi.json --url "$url" \
    -H "Authorization: Bearer $token" \
    --checks all --exclude-checks positive_data_acceptance \
    --exclude-operation-id register_widget_bundle \
    --max-examples "${MAX_EXAMPLES:-50}" --seed "${SEED:-1}" --no-color 2>&1 | tee "$work/st.log" || status=1
  echo "schemathesis as $who: $(grep -Eo '[0-9]+ generated' "$work/st.log" | tail -1) requests"
done
exit $status
