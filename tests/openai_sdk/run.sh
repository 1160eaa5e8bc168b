#!/usr/bin/env bash
# The official OpenAI Python SDK, and LangChain's ChatOpenAI, against llm-local's
# OpenAI-compatible face.
#
# Installs `openai` and `pytest` into ./.venv (tools/venv.sh, idempotent), builds
# llm-local (a no-op when up to date; SKIP_BUILD=1 skips it), starts a loopback fake OpenAI
# upstream (fake_openai.py) and llm-local pointed at it (LLM_PROVIDER_URL_OPENAI), saves an
# OpenAI key for a user, and runs test_openai_sdk.py. Everything it starts is stopped by PID
# on exit; the exit status is pytest's (non-zero on any failure).
#
# Usage: tests/openai_sdk/run.sh [extra pytest args]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="$ROOT/.venv/bin/python"
BIN="${LLM_LOCAL_BIN:-$ROOT/target/release/llm-local}"
USER_ID="sdk-user"
# shape-valid OpenAI project key (the fake upstream accepts any "Bearer sk-...")
OPENAI_KEY="sk-proj-loopbackFakeKey0123456789abcdefghijklmnopqrstuvAbCd"

echo "==> openai_sdk: python packages (tools/venv.sh)"
"$ROOT/tools/venv.sh"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "==> openai_sdk: cargo build --release -p llm-local"
    (cd "$ROOT" && cargo build --release -p llm-local)
fi
[[ -x "$BIN" ]] || { echo "openai_sdk: $BIN not found; build it with: cargo build --release -p llm-local" >&2; exit 1; }

WORK="$(mktemp -d -t openai_sdk.XXXXXX)"
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
        kill -0 "$pid" 2>/dev/null || { echo "openai_sdk: process $pid exited early" >&2; return 1; }
        sleep 0.1
    done
    echo "openai_sdk: timed out waiting for $file" >&2
    return 1
}

echo "==> openai_sdk: fake OpenAI upstream on loopback"
PYTHONDONTWRITEBYTECODE=1 "$PY" "$HERE/fake_openai.py" --port 0 >"$WORK/fake.out" 2>"$WORK/fake.err" &
PIDS+=($!)
FAKE_URL="$(wait_url "$WORK/fake.out" "${PIDS[-1]}")"

echo "==> openai_sdk: llm-local (upstream $FAKE_URL/v1)"
DATA_DIR="$WORK/data"
TOKEN="$("$BIN" token create --user "$USER_ID" --data-dir "$DATA_DIR" 2>>"$WORK/gateway.err")"
LLM_PROVIDER_URL_OPENAI="$FAKE_URL/v1" LLM_REQUESTS_PER_MINUTE=100000 LLM_PROVIDER_TIMEOUT_SECS=10 \
    "$BIN" serve --addr 127.0.0.1:0 --data-dir "$DATA_DIR" >"$WORK/gateway.out" 2>"$WORK/gateway.err" &
PIDS+=($!)
GATEWAY_URL="$(wait_url "$WORK/gateway.out" "${PIDS[-1]}")"
echo "    gateway $GATEWAY_URL"

echo "==> openai_sdk: saving an OpenAI key for $USER_ID"
"$PY" - "$GATEWAY_URL" "$TOKEN" "$USER_ID" "$OPENAI_KEY" <<'EOF'
import json, sys, urllib.request
url, token, user, key = sys.argv[1:]
body = {"preferences": {"trackUsage": True, "monthlyBudgetUsd": 100.0}, "apiKeys": {"openai": key}}
req = urllib.request.Request(f"{url}/api/llm-settings/{user}", data=json.dumps(body).encode(), method="PUT",
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=10) as r:
    got = json.load(r)
assert got["hasApiKeys"]["openai"] is True, got
EOF

echo "==> openai_sdk: pytest"
set +e
(cd "$HERE" && GATEWAY_URL="$GATEWAY_URL" GATEWAY_TOKEN="$TOKEN" USER_ID="$USER_ID" FAKE_URL="$FAKE_URL" \
    DATA_DIR="$DATA_DIR" PYTHONDONTWRITEBYTECODE=1 \
    "$PY" -m pytest -p no:cacheprovider -v -rA test_openai_sdk.py test_zlangchain.py "$@")
rc=$?
set -e
exit $rc
