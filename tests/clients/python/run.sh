#!/usr/bin/env bash
# Generates a Python client from openapi/openapi.json with
# openapi-python-client (no hand edits) and drives a running widget-data
# with it: bash tests/clients/python/run.sh [path to the widget-data binary]
set -euo pipefail
bin=$(realpath "${1:-$(dirname "$0")/../../../target/debug/widget-data}")
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check openapi-python-client==0.29.1
rm -rf generated
.venv/bin/openapi-python-client generate --path ../../../openapi/openapi.json \
  --config config.yml --output-path generated --fail-on-warning
.venv/bin/pip install --quiet --disable-pip-version-check ./generated
WIDGET_DATA_BIN="$bin" .venv/bin/python test_client.py
