#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs the Python tools (moto,
# cfn-lint, aws-sam-cli, checkov) into .venv-tools/, then runs format and
# lint checks, every test tier (unit, AWS-wire against moto on loopback,
# whole app in process, the CLI, the built Lambdas on the runtime API
# emulator, the console in headless Chromium), and the template checks.
# The AWS-wire tests start moto themselves on a free loopback port (one
# request at a time: tests/deploy/moto_serialized.py) and stop it after.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

# A clean run builds every test binary once: without incremental caches and
# debug info it needs about half the disk (CI machines have little to spare).
# Set either variable to keep your own.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-0}"

step() { printf '\n== %s\n' "$*"; }
started=$SECONDS

step "tools"
infra/scripts/tools.sh

step "headless Chromium (the console's browser tests)"
# Debian's chromium and chromedriver, one version (CI runs as root).
if ! command -v chromedriver >/dev/null 2>&1 || ! [ -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "the browser tests need chromium and chromium-driver: run 'apt-get install -y chromium chromium-driver' as root" >&2
        exit 1
    fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
chromedriver --version

step "rust components"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "fixture arithmetic (python decimal)"
python3 events/payloads/check_totals.py | tail -n 1

step "cargo test (unit, AWS wire via moto, in-process app, CLI)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
RETAILFLOW_SAM_PYTHON="$REPO/.venv-tools/sam/bin/python" \
    cargo test --workspace --locked --lib --bins --tests 2>&1 | tee "$log"
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")

step "Lambda runtime API (cargo lambda watch + invocations, against moto and the simulators)"
.venv-tools/sam/bin/python tests/lambda_runtime/check.py | tee -a "$log"
read -r lr_passed lr_failed < <(awk '/^lambda runtime: [0-9]+ passed/ { print $3, $5 }' "$log")
passed=$((passed + lr_passed))
failed=$((failed + lr_failed))

step "template checks"
infra/scripts/check-template.sh

printf '\ntarget/: %s\n' "$(du -sh target 2>/dev/null | cut -f1)"
printf '\nall checks passed in %d s\n' "$((SECONDS - started))"
echo "tests: $passed passed, $failed failed"
