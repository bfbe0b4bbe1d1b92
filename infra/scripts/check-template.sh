#!/usr/bin/env bash
# Checks template.yaml: cfn-lint, sam validate and checkov (when installed).
# Installs the tools first (infra/scripts/tools.sh; cached after the first run).
# Prints one line per check; exits non-zero if any check fails, after
# printing that check's output.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$REPO/.venv-tools"
cd "$REPO"

"$REPO/infra/scripts/tools.sh" cfn sam checkov >/dev/null

export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" SAM_CLI_TELEMETRY=0

failed=0
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

# check NAME CMD...: runs CMD, prints "check: NAME ok|FAILED (N s)".
check() {
    local name="$1" start=$SECONDS
    shift
    if "$@" >"$out" 2>&1; then
        echo "check: $name ok ($((SECONDS - start)) s)"
    else
        echo "check: $name FAILED ($((SECONDS - start)) s)"
        sed 's/^/    /' "$out"
        failed=1
    fi
}

check cfn-lint "$TOOLS/cfn/bin/cfn-lint" template.yaml
check "sam validate" "$TOOLS/sam/bin/sam" validate --template-file template.yaml
if [[ -x "$TOOLS/checkov/bin/checkov" ]]; then
    check checkov "$TOOLS/checkov/bin/checkov" -f template.yaml --compact --quiet --skip-download
else
    echo "check: checkov skipped (not installed)"
fi

exit "$failed"
