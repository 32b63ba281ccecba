#!/usr/bin/env bash
# Fuzzes the running service against its own contract with Schemathesis,
# from the committed openapi/openapi.json, as the seeded demo user:
#   bash tests/fuzz/run.sh [path to the widget-data binary]
# Fails on a server error, a response that breaks the documented schema,
# content type or headers, or an undocumented status code. (Schemathesis'
# "schema-valid data accepted" check is left out: the data-source grammar
# names tables and columns that only the live database knows, so a
# schema-valid body may rightly be refused with 400.)
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
token=$(awk '/demo user/ {print $3}' "$work/out.log")

.venv/bin/schemathesis run ../../openapi/openapi.json --url "$url" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples "${MAX_EXAMPLES:-50}" --seed "${SEED:-1}" --no-color 2>&1 | tee "$work/st.log"
echo "schemathesis: $(grep -Eo '[0-9]+ generated' "$work/st.log" | tail -1) requests"
