#!/usr/bin/env bash
# Installs the Python tools retailflow's tests and template checks use, one
# virtualenv per tool family under $REPO/.venv-tools/ (they pin different
# boto3/botocore ranges, so they must not share an environment):
#
#   .venv-tools/moto/bin/moto_server   AWS-compatible endpoint for the AWS-wire tests
#   .venv-tools/cfn/bin/cfn-lint       CloudFormation linter
#   .venv-tools/sam/bin/sam            AWS SAM CLI (sam validate, sam build)
#   .venv-tools/checkov/bin/checkov    IaC security scanner
#   .venv-tools/cargo-lambda/bin/cargo-lambda   Lambda runtime emulator (watch / invoke)
#   .venv-tools/bench-python/bin/python  boto3 + aws-lambda-powertools, for the
#                                        benchmarks only (not installed by default)
#
# Usage: infra/scripts/tools.sh [moto|cfn|sam|checkov|cargo-lambda|bench-python ...]
#        (default: all but bench-python)
#
# Idempotent: a venv whose tool already runs at the pinned version is left
# alone (a stamp file records the pin). Call the binaries by path; nothing
# needs to be sourced. Prints one line per tool; pip's output goes to
# .venv-tools/<name>.install.log and is shown only on failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$REPO/.venv-tools"
PYTHON="${PYTHON:-python3}"

# Pinned versions (verified to install on the project's machine).
MOTO_SPEC='moto[server]==5.2.5'
CFN_SPEC='cfn-lint==1.58.0'
SAM_SPEC='aws-sam-cli==1.170.0'
CHECKOV_SPEC='checkov==3.3.30'
CARGO_LAMBDA_SPEC='cargo-lambda==1.9.2'
# Only for the benchmarks (infra/scripts/bench.sh), not installed by default.
BENCH_PYTHON_SPEC='aws-lambda-powertools[aws-sdk]==3.37.0'

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 SAM_CLI_TELEMETRY=0

# ensure NAME SPEC CHECK_CMD...
#   CHECK_CMD is run with the venv's bin/ first on PATH; exit 0 means usable.
ensure() {
    local name="$1" spec="$2"
    shift 2
    local venv="$TOOLS/$name"
    local stamp="$venv/.retailflow-pin"
    local log="$TOOLS/$name.install.log"

    if [[ -f "$stamp" && "$(cat "$stamp")" == "$spec" ]] &&
        PATH="$venv/bin:$PATH" "$@" >/dev/null 2>&1; then
        echo "tools: $name ok ($spec, cached)"
        return 0
    fi

    mkdir -p "$TOOLS"
    local start=$SECONDS
    rm -rf "$venv"
    if ! {
        "$PYTHON" -m venv "$venv" &&
            "$venv/bin/python" -m pip install --quiet "$spec"
    } >"$log" 2>&1; then
        echo "tools: $name FAILED installing $spec; last lines of $log:" >&2
        tail -n 30 "$log" >&2
        return 1
    fi
    if ! PATH="$venv/bin:$PATH" "$@" >>"$log" 2>&1; then
        echo "tools: $name installed but '$*' fails; see $log" >&2
        tail -n 30 "$log" >&2
        return 1
    fi
    printf '%s\n' "$spec" >"$stamp"
    echo "tools: $name installed ($spec) in $((SECONDS - start)) s"
}

install_one() {
    case "$1" in
        moto) ensure moto "$MOTO_SPEC" moto_server --help ;;
        cfn) ensure cfn "$CFN_SPEC" cfn-lint --version ;;
        sam) ensure sam "$SAM_SPEC" sam --version ;;
        checkov) ensure checkov "$CHECKOV_SPEC" checkov --version ;;
        cargo-lambda) ensure cargo-lambda "$CARGO_LAMBDA_SPEC" cargo-lambda lambda --version ;;
        bench-python) ensure bench-python "$BENCH_PYTHON_SPEC" python -c "import boto3, aws_lambda_powertools.utilities.idempotency" ;;
        *)
            echo "tools: unknown tool '$1' (expected moto, cfn, sam, checkov, cargo-lambda or bench-python)" >&2
            return 2
            ;;
    esac
}

if [[ $# -eq 0 ]]; then
    set -- moto cfn sam checkov cargo-lambda
fi
for tool in "$@"; do
    install_one "$tool"
done
