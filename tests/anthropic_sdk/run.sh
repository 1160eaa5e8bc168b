#!/usr/bin/env bash
# The official Anthropic Python SDK against llm-local's Anthropic Messages face.
#
# Installs `anthropic` and `pytest` into ./.venv (tools/venv.sh, idempotent; PY=/path/python
# with SKIP_VENV=1 uses another interpreter that has them), builds llm-local (a no-op when
# up to date; SKIP_BUILD=1 skips it), starts a loopback fake upstream that speaks both
# Anthropic's and OpenAI's wire formats (fake_upstream.py) and llm-local pointed at it
# (LLM_PROVIDER_URL_ANTHROPIC, LLM_PROVIDER_URL_OPENAI), saves both keys for a user, and
# runs test_anthropic_sdk.py. Everything it starts is stopped by PID on exit; the exit
# status is pytest's (non-zero on any failure).
#
# Usage: tests/anthropic_sdk/run.sh [extra pytest args]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
BIN="${LLM_LOCAL_BIN:-$ROOT/target/release/llm-local}"
USER_ID="sdk-user"
# shape-valid keys (the fake upstream accepts any "Bearer sk-..." and "x-api-key: sk-ant-...")
OPENAI_KEY="sk-proj-loopbackFakeKey0123456789abcdefghijklmnopqrstuvAbCd"
ANTHROPIC_KEY="sk-ant-api03-loopbackFakeKey0123456789abcdefghijklmnopqrstuv"

if [[ "${SKIP_VENV:-0}" != 1 ]]; then
    echo "==> anthropic_sdk: python packages (tools/venv.sh)"
    "$ROOT/tools/venv.sh"
fi
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "==> anthropic_sdk: cargo build --release -p llm-local"
    (cd "$ROOT" && cargo build --release -p llm-local)
fi
[[ -x "$BIN" ]] || { echo "anthropic_sdk: $BIN not found; build it with: cargo build --release -p llm-local" >&2; exit 1; }

WORK="$(mktemp -d -t anthropic_sdk.XXXXXX)"
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $rc -ne 0 && -f "$WORK/gateway.err" ]]; then
        echo "---- llm-local stderr (last 30 lines) ----" >&2
        tail -n 30 "$WORK/gateway.err" >&2 || true
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (max 15 s) for "... listening on http://127.0.0.1:PORT" in $1; prints the URL.
wait_url() {
    local file="$1" pid="$2" url=""
    for _ in $(seq 150); do
        url="$(grep -m1 -o 'http://127\.0\.0\.1:[0-9]*' "$file" 2>/dev/null || true)"
        [[ -n "$url" ]] && { echo "$url"; return 0; }
        kill -0 "$pid" 2>/dev/null || { echo "anthropic_sdk: process $pid exited early" >&2; return 1; }
        sleep 0.1
    done
    echo "anthropic_sdk: timed out waiting for $file" >&2
    return 1
}

echo "==> anthropic_sdk: fake Anthropic and OpenAI upstream on loopback"
PYTHONDONTWRITEBYTECODE=1 "$PY" "$HERE/fake_upstream.py" --port 0 >"$WORK/fake.out" 2>"$WORK/fake.err" &
PIDS+=($!)
FAKE_URL="$(wait_url "$WORK/fake.out" "${PIDS[-1]}")"

echo "==> anthropic_sdk: llm-local (upstreams at $FAKE_URL)"
DATA_DIR="$WORK/data"
TOKEN="$("$BIN" token create --user "$USER_ID" --data-dir "$DATA_DIR" 2>>"$WORK/gateway.err")"
LLM_PROVIDER_URL_OPENAI="$FAKE_URL/v1" LLM_PROVIDER_URL_ANTHROPIC="$FAKE_URL" LLM_REQUESTS_PER_MINUTE=100000 LLM_PROVIDER_TIMEOUT_SECS=10 \
    "$BIN" serve --addr 127.0.0.1:0 --data-dir "$DATA_DIR" >"$WORK/gateway.out" 2>"$WORK/gateway.err" &
PIDS+=($!)
GATEWAY_URL="$(wait_url "$WORK/gateway.out" "${PIDS[-1]}")"
echo "    gateway $GATEWAY_URL"

echo "==> anthropic_sdk: saving Anthropic and OpenAI keys for $USER_ID"
"$PY" - "$GATEWAY_URL" "$TOKEN" "$USER_ID" "$OPENAI_KEY" "$ANTHROPIC_KEY" <<'EOF'
import json, sys, urllib.request
url, token, user, key, anthropic_key = sys.argv[1:]
body = {"preferences": {"trackUsage": True, "monthlyBudgetUsd": 100.0, "autoFailover": False},
        "apiKeys": {"openai": key, "anthropic": anthropic_key}}
req = urllib.request.Request(f"{url}/api/llm-settings/{user}", data=json.dumps(body).encode(), method="PUT",
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=10) as r:
    got = json.load(r)
assert got["hasApiKeys"]["openai"] is True and got["hasApiKeys"]["anthropic"] is True, got
EOF

echo "==> anthropic_sdk: pytest"
set +e
(cd "$HERE" && GATEWAY_URL="$GATEWAY_URL" GATEWAY_TOKEN="$TOKEN" USER_ID="$USER_ID" FAKE_URL="$FAKE_URL" \
    DATA_DIR="$DATA_DIR" PYTHONDONTWRITEBYTECODE=1 \
    "$PY" -m pytest -p no:cacheprovider -v -rA test_anthropic_sdk.py "$@")
rc=$?
set -e
exit $rc
