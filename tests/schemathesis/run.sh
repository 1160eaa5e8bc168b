#!/usr/bin/env bash
# Property-based checks of llm-local against the OpenAPI document it serves (issue 15):
# schemathesis generates requests for every operation from /openapi.json (examples,
# coverage, fuzzing and stateful phases) and checks that no response is a 5xx, that every
# status code, content type and body conforms to the document, and, afterwards, that
# the server is still up and healthy and logged no panic.
#
# Usage: tests/schemathesis/run.sh [max-examples per operation, default 25]
#   env: LLM_LOCAL_BIN (default target/debug/llm-local, built unless SKIP_BUILD=1),
#        SCHEMATHESIS (default .venv/schemathesis/bin/schemathesis, from tools/venv.sh),
#        ST_SEED (the hypothesis seed; fixed by default so a failure reproduces)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${LLM_LOCAL_BIN:-$ROOT/target/debug/llm-local}
ST=${SCHEMATHESIS:-$ROOT/.venv/schemathesis/bin/schemathesis}
N=${1:-25}
SEED=${ST_SEED:-20261202}
[[ -x "$ST" ]] || tools/venv.sh
if [[ "${SKIP_BUILD:-}" != 1 ]]; then cargo build --locked -q -p llm-local; fi

DATA=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$DATA"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A loopback OpenAI (the SDK tests' fake: OpenAI's documented bodies, JSON and streams,
# tools, embeddings), so that generated requests which get past validation reach a
# provider and answer 200 with a body the document's schema is checked against.
PYTHONDONTWRITEBYTECODE=1 python3 tests/openai_sdk/fake_openai.py --port 0 >"$DATA/fake.out" 2>"$DATA/fake.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$DATA/fake.out" 2>/dev/null && break; sleep 0.1; done
FAKE=$(grep -o 'http://[0-9.:]*' "$DATA/fake.out" | head -1)
[[ -n "$FAKE" ]] || { echo "schemathesis: the fake OpenAI did not start"; cat "$DATA/fake.err"; exit 1; }

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
export ST_USER=st-user ST_TENANT=st-tenant
# Tokens first: a serving process holds the data directory's lock. The run's caller is
# an admin, so the admin routes are exercised too (the user routes take its own id).
TOKEN=$("$BIN" token create --user "$ST_USER" --admin --data-dir "$DATA/gw")
# Every other provider points at a closed loopback port: a request routed there ends at
# once in the documented 502, never in a call off this machine.
for p in ANTHROPIC GOOGLE BEDROCK AZURE_OPENAI GROQ OPENROUTER FIREWORKS MISTRAL DEEPSEEK TOGETHER OLLAMA; do
    export "LLM_PROVIDER_URL_$p=http://127.0.0.1:9"
done
LLM_PROVIDER_URL_OPENAI="$FAKE/v1" LLM_REQUESTS_PER_MINUTE=100000 \
    "$BIN" serve --addr "127.0.0.1:$PORT" --data-dir "$DATA/gw" >"$DATA/server.log" 2>&1 &
PID=$!
PIDS+=("$PID")
for _ in $(seq 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done
# The caller's OpenAI key, saved before the run (the run may delete it again).
curl -sf -X PUT "$BASE/api/llm-settings/$ST_USER" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' \
    -d '{"preferences": {"defaultProvider": "openai"}, "apiKeys": {"openai": "sk-proj-SCHEMATHESIS0123456789abcdefghijklmnopqrstuv"}}' >/dev/null \
    || { echo "schemathesis: could not save the run's key"; tail -5 "$DATA/server.log"; exit 1; }

echo "schemathesis: $N examples per operation, seed $SEED, against $BASE/openapi.json"
status=0
"$ST" --config-file tests/schemathesis/schemathesis.toml run "$BASE/openapi.json" \
    -H "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$N" --seed "$SEED" --workers 1 --request-timeout 30 \
    --suppress-health-check all || status=$?

# The server survived the run: still running, healthy, and no panic in its log.
if ! kill -0 "$PID" 2>/dev/null; then
    echo "schemathesis: FAIL: llm-local exited during the run"; tail -20 "$DATA/server.log"; exit 1
fi
if ! curl -sf "$BASE/health" >/dev/null; then
    echo "schemathesis: FAIL: /health does not answer after the run"; exit 1
fi
if grep -n "panicked" "$DATA/server.log"; then
    echo "schemathesis: FAIL: llm-local panicked during the run"; exit 1
fi
if [[ $status -ne 0 ]]; then
    echo "schemathesis: FAIL (exit $status): see the failures above"; exit "$status"
fi
calls=$(curl -s "$FAKE/__requests" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "schemathesis: the fake OpenAI answered $calls generated requests"
echo "schemathesis: OK: no 5xx, every response as documented, server healthy afterwards"
