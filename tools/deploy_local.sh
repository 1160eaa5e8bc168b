#!/usr/bin/env bash
# Deploy what infra/*.tf declares into a throwaway ministack (local AWS emulator) and run
# the settings, generate, usage, admin and tenant journeys against it through API Gateway
# with real Cognito tokens.
#
#   tools/deploy_local.sh [deploy_local.py options, e.g. --var lambda_architecture=x86_64]
#
# Needs the Lambda zips (`make build`: target/lambda/{llm-settings,generate,llm-usage}/bootstrap.zip).
# ministack listens on a free 127.0.0.1 port, keeps its temp files (the extracted
# per-function code folders) in a private directory, and is stopped (its process group,
# by PID) and cleaned up on every exit. Exits non-zero if anything fails.
# DEPLOY_LOCAL_KEEP_LOG=<file> keeps ministack's log (with the function's output);
# MINISTACK_AUTH=false turns off IAM enforcement (on by default: the function then runs
# with its role's credentials and only the permissions iam.tf gives it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/tools/venv.sh"
PY="$ROOT/.venv/bin/python"

ZIP="${SETTINGS_ZIP:-$ROOT/target/lambda/llm-settings/bootstrap.zip}"
GENERATE_ZIP="${GENERATE_ZIP:-$ROOT/target/lambda/generate/bootstrap.zip}"
USAGE_ZIP="${USAGE_ZIP:-$ROOT/target/lambda/llm-usage/bootstrap.zip}"
for z in "$ZIP" "$GENERATE_ZIP" "$USAGE_ZIP"; do
    if [[ ! -f "$z" ]]; then
        echo "deploy-local: $z not found; build it first (make build)" >&2
        exit 1
    fi
done

PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
ENDPOINT="http://127.0.0.1:$PORT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/llm-deploy-local.XXXXXX")"
mkdir -p "$WORK/tmp"
MS_PID=""

cleanup() {
    local rc=$?
    if [[ -n "$MS_PID" ]] && kill -0 "$MS_PID" 2>/dev/null; then
        echo "deploy-local: stopping ministack (pid $MS_PID)"
        # ministack runs in its own process group (setsid), with the Lambda bootstrap
        # processes it spawned: stop the whole group.
        kill -TERM -- "-$MS_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$MS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$MS_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 && -f "$WORK/ministack.log" ]]; then
        echo "deploy-local: last lines of the ministack log:" >&2
        tail -n 40 "$WORK/ministack.log" >&2 || true
    fi
    if [[ -n "${DEPLOY_LOCAL_KEEP_LOG:-}" && -f "$WORK/ministack.log" ]]; then
        cp "$WORK/ministack.log" "$DEPLOY_LOCAL_KEEP_LOG" && echo "deploy-local: log kept in $DEPLOY_LOCAL_KEEP_LOG"
    fi
    # $WORK/tmp is ministack's TMPDIR: the per-function code folders live there.
    rm -rf "$WORK" "/tmp/ministack-provided-code-$PORT" "/tmp/ministack-lambda-extract-$PORT"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "deploy-local: starting ministack on $ENDPOINT (log: $WORK/ministack.log)"
(
    cd "$WORK"
    exec setsid env \
        BIND_HOST=127.0.0.1 GATEWAY_PORT="$PORT" AWS_ENDPOINT_URL="$ENDPOINT" \
        TMPDIR="$WORK/tmp" PERSIST_STATE=0 LOG_LEVEL=INFO IOT_MTLS_ENABLED=0 SFTP_ENABLED=0 AUTH="${MINISTACK_AUTH:-true}" \
        AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
        "$ROOT/.venv/bin/ministack"
) > "$WORK/ministack.log" 2>&1 &
MS_PID=$!

for i in $(seq 1 100); do
    if ! kill -0 "$MS_PID" 2>/dev/null; then
        echo "deploy-local: ministack exited during start-up" >&2
        exit 1
    fi
    if "$PY" - "$ENDPOINT" <<'PYEOF' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/_ministack/health", timeout=1).read()
PYEOF
    if [[ $i -eq 100 ]]; then echo "deploy-local: ministack not ready after 20 s" >&2; exit 1; fi
    sleep 0.2
done
echo "deploy-local: ministack ready (pid $MS_PID)"

AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
    "$PY" "$ROOT/tools/deploy_local.py" --endpoint "$ENDPOINT" --infra "$ROOT/infra" \
    --ministack-log "$WORK/ministack.log" \
    --var "settings_zip_path=$ZIP" --var "generate_zip_path=$GENERATE_ZIP" \
    --var "usage_zip_path=$USAGE_ZIP" --var lambda_architecture=x86_64 "$@"
