#!/usr/bin/env bash
# Property-based checks of llm-local against its own /openapi.json (issue 15 item 2):
# no 5xx, responses conform to the document. Not part of `make test`.
# Usage: tests/schemathesis/run.sh [max-examples]   (needs `schemathesis` on PATH or
# SCHEMATHESIS=/path/to/schemathesis, and a built target/debug/llm-local)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/debug/llm-local}
ST=${SCHEMATHESIS:-schemathesis}
N=${1:-20}
PORT=${PORT:-18787}
DATA=$(mktemp -d)
# The token first: a serving process holds the data directory's lock.
TOKEN=$("$BIN" token create --user ops --admin --data-dir "$DATA")
"$BIN" serve --addr "127.0.0.1:$PORT" --data-dir "$DATA" >"$DATA/server.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
"$ST" run "http://127.0.0.1:$PORT/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --max-examples "$N" --workers 1
