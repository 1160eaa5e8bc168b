#!/usr/bin/env bash
# The dashboard in a real browser: Debian's chromium driven by playwright-core (npm),
# against llm-local and a loopback fake OpenAI (fake_upstream.mjs).
#
# Installs what it needs, idempotently, saying so: chromium with apt-get when
# /usr/bin/chromium is missing, and playwright-core (pinned in package-lock.json) with
# `npm ci` when node_modules does not match the lock file. Builds llm-local unless
# SKIP_BUILD=1 (LLM_LOCAL_BIN picks the binary). Screenshots go to tests/browser/artifacts/.
#
# Usage: tests/browser/run.sh [node --test args]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [[ ! -x "$CHROMIUM" ]]; then
    echo "==> browser: installing Debian's chromium (apt-get)"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 || {
        $SUDO apt-get update -q >/dev/null
        $SUDO apt-get install -y -q chromium >/dev/null
    }
fi
command -v node >/dev/null || { echo "browser: node not found; install Node.js 20 (apt-get install nodejs npm)" >&2; exit 1; }
if ! cmp -s "$HERE/package-lock.json" "$HERE/node_modules/.package-lock.json.installed" 2>/dev/null; then
    echo "==> browser: npm ci (playwright-core, pinned in package-lock.json)"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$HERE/package-lock.json" "$HERE/node_modules/.package-lock.json.installed"
fi

BIN="${LLM_LOCAL_BIN:-$ROOT/target/release/llm-local}"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    echo "==> browser: cargo build --release -p llm-local"
    (cd "$ROOT" && cargo build --release --locked -p llm-local)
fi
[[ -x "$BIN" ]] || { echo "browser: $BIN not found" >&2; exit 1; }

echo "==> browser: $("$CHROMIUM" --version 2>/dev/null | head -1), playwright-core $(node -p "require('$HERE/node_modules/playwright-core/package.json').version")"
cd "$HERE"
LLM_LOCAL_BIN="$BIN" CHROMIUM="$CHROMIUM" node --test --test-concurrency=1 --test-reporter=spec "$@" dashboard.test.mjs
echo "==> browser: screenshots in tests/browser/artifacts/"
