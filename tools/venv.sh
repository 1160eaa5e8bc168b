#!/usr/bin/env bash
# Create ./.venv in the repo root and install tools/requirements.txt into it.
# Idempotent: it installs only when requirements.txt changed (its hash is kept in a stamp file).
#
# python-hcl2 goes into its own directory, .venv/python-hcl2, not into site-packages:
# checkov depends on bc-python-hcl2, a fork that installs a module with the same name
# (`hcl2`), and pip would mix the two packages' files in one directory. tools/*.py put
# .venv/python-hcl2 first on sys.path; checkov keeps its own fork.
#
# schemathesis lives in a second environment, .venv/schemathesis, from
# tools/schemathesis-requirements.txt: it needs pytest 9, which checkov's pins forbid.
#
# Usage: tools/venv.sh    then run tools from .venv/bin/... (schemathesis from
#        .venv/schemathesis/bin/schemathesis)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/tools/requirements.txt"
STAMP="$VENV/.requirements.sha256"
HCL2_DIR="$VENV/python-hcl2"
PYTHON="${PYTHON:-python3}"

ST_VENV="$VENV/schemathesis"
ST_REQ="$ROOT/tools/schemathesis-requirements.txt"
ST_STAMP="$ST_VENV/.requirements.sha256"

# The schemathesis environment: created and filled only when its requirements changed.
schemathesis_env() {
    local want
    want="$(sha256sum "$ST_REQ" | cut -d' ' -f1)"
    if [[ -x "$ST_VENV/bin/schemathesis" && -f "$ST_STAMP" && "$(cat "$ST_STAMP")" == "$want" ]]; then
        echo "venv: $ST_VENV is up to date with tools/schemathesis-requirements.txt"
        return
    fi
    [[ -x "$ST_VENV/bin/python" ]] || "$PYTHON" -m venv "$ST_VENV"
    echo "venv: installing schemathesis (tools/schemathesis-requirements.txt) into $ST_VENV"
    "$ST_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ST_REQ"
    echo "$want" > "$ST_STAMP"
}

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    echo "venv: $VENV is up to date with tools/requirements.txt"
    schemathesis_env
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "venv: creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# requirement lines without comments; python-hcl2 split off
sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$REQ" > "$tmp/all.txt"
grep -viE '^python-hcl2([^a-z0-9_-]|$)' "$tmp/all.txt" > "$tmp/main.txt" || true
grep -iE '^python-hcl2([^a-z0-9_-]|$)' "$tmp/all.txt" > "$tmp/hcl2.txt" || true

echo "venv: installing $(wc -l < "$tmp/main.txt") packages from tools/requirements.txt into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$tmp/main.txt"
if [[ -s "$tmp/hcl2.txt" ]]; then
    echo "venv: installing $(cat "$tmp/hcl2.txt") into $HCL2_DIR (kept apart from checkov's hcl2 fork)"
    rm -rf "$HCL2_DIR"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-compile \
        --target "$HCL2_DIR" -r "$tmp/hcl2.txt"
fi
echo "$want" > "$STAMP"
schemathesis_env
echo "venv: ready; tools are in $VENV/bin"
