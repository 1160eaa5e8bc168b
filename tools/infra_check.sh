#!/usr/bin/env bash
# Static checks of infra/ without AWS or provider downloads:
#   1. every .tf parses (python-hcl2) and the variables' defaults pass their validations
#      and the expressions deploy_local.py evaluates are in its supported subset;
#   2. the streaming front door (infra/streaming.tf), which ministack cannot deploy, planned
#      and checked from the .tf (tools/check_streaming_tf.py, with its self-test);
#   3. checkov: zero failed checks (skips only as inline `#checkov:skip=ID:why` comments);
#   4. `terraform fmt -check` when a terraform binary is installed.
# Exits non-zero on the first failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/tools/venv.sh"
cd "$ROOT"

echo "infra-check: parsing infra/*.tf with python-hcl2"
.venv/bin/python - <<'PYEOF'
import sys
sys.path.insert(0, "tools")
import tfeval
# parses every .tf (a syntax error raises); placeholder account for data sources
ev = tfeval.Evaluator("infra", data_sources={
    "aws_caller_identity": {"account_id": "123456789012"}, "aws_partition": {"partition": "aws"}})
ev.check_validations()                  # defaults satisfy every validation block
for name in ev.module["locals"]:        # locals that need no resource evaluate cleanly
    try:
        ev._local(name)
    except tfeval.NotCreated:
        pass
print(f"infra-check: {len(ev.files)} files, {len(ev.module['variable'])} variables, "
      f"{len(ev.module['resource'])} resources, {len(ev.module['data'])} data sources: ok")
missing = [n for n, b in ev.module["variable"].items() if "description" not in b or "type" not in b]
if missing:
    sys.exit(f"infra-check: variables without type or description: {missing}")
PYEOF

echo "infra-check: the streaming REST API checked from the .tf (tools/check_streaming_tf.py)"
.venv/bin/python tools/check_streaming_tf.py --self-test

echo "infra-check: checkov -d infra (skips only inline, with a justification)"
# TF_CLI_CONFIG_FILE: checkov may call terraform, which warns without a CLI config.
TF_CLI_CONFIG_FILE=/dev/null .venv/bin/checkov -d infra --framework terraform --skip-download \
    --quiet --compact --soft-fail-on NONE > "${TMPDIR:-/tmp}/checkov.$$.txt" 2>&1 && rc=0 || rc=$?
cat "${TMPDIR:-/tmp}/checkov.$$.txt"
summary="$(grep -E 'Passed checks: [0-9]+, Failed checks: [0-9]+' "${TMPDIR:-/tmp}/checkov.$$.txt" || true)"
rm -f "${TMPDIR:-/tmp}/checkov.$$.txt"
if [[ $rc -ne 0 || -z "$summary" || ! "$summary" =~ "Failed checks: 0," ]]; then
    echo "infra-check: checkov failed (exit $rc)" >&2
    exit 1
fi
# Every skip must carry a justification.
if grep -rnE 'checkov:skip=[A-Z0-9_]+([^A-Z0-9_:]|:[[:space:]]*$|$)' infra/*.tf; then
    echo "infra-check: checkov skip without a justification (use #checkov:skip=ID:why)" >&2
    exit 1
fi

if command -v terraform >/dev/null 2>&1; then
    echo "infra-check: terraform fmt -check -recursive infra"
    TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff infra
else
    echo "infra-check: terraform fmt skipped: no terraform"
fi
echo "infra-check: ok"
