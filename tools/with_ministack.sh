#!/usr/bin/env bash
# Runs a command with a fresh ministack (AWS emulator) on a free loopback port, with
# AWS_ENDPOINT_URL, a region and dummy credentials exported, then stops the emulator
# (by its PID) whatever the command's outcome. Exits with the command's status.
# Usage: tools/with_ministack.sh <command> [args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MINISTACK="${MINISTACK_BIN:-$ROOT/.venv/bin/ministack}"
[[ -x "$MINISTACK" ]] || { echo "with_ministack: $MINISTACK not found; run tools/venv.sh" >&2; exit 1; }

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log="$(mktemp -t ministack.XXXXXX.log)"
echo "with_ministack: starting ministack on 127.0.0.1:$port (log $log)"
BIND_HOST=127.0.0.1 GATEWAY_PORT="$port" AWS_ENDPOINT_URL="http://127.0.0.1:$port" \
    "$MINISTACK" >"$log" 2>&1 &
pid=$!
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap stop EXIT

for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/_ministack/health" >/dev/null 2>&1; then break; fi
    kill -0 "$pid" 2>/dev/null || { echo "with_ministack: ministack exited; log:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/_ministack/health" >/dev/null || { echo "with_ministack: not ready after 10 s" >&2; exit 1; }

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="test" AWS_SECRET_ACCESS_KEY="test"
unset AWS_PROFILE AWS_SESSION_TOKEN
"$@"
