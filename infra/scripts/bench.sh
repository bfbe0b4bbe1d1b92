#!/usr/bin/env bash
# The performance benchmarks, on demand (not part of the test command; about
# an hour from cold on 2 cores, most of it release builds). Prints the
# figures and writes target/bench/*.json:
#
#   1. zip size of every function built for arm64 with
#      `cargo lambda build --release --arm64 --output-format zip` (zig from pip);
#   2. cold start of every function, a hello-world lambda_runtime binary and a
#      Python step with boto3 + aws-lambda-powertools idempotency, under a
#      runtime API emulator on loopback (bench/coldstart.py), release x86_64;
#   3. billed AWS requests per order and per return, counted on the SDK
#      clients against moto, beside a Powertools-style design, with $ per
#      million (bench/costs.py);
#   4. CPU per order through the whole app in one process (retailflow bench-orders).
#
# Usage: infra/scripts/bench.sh [RUNS]   (cold-start runs per process; default 25)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
RUNS="${1:-25}"
FUNCTIONS=(order-publish erp-post loyalty-accrual return-reversal checkout-validation
    stock-commit catalog-sync fulfillment-sync reconciliation)
packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(-p "$f"); done
step() { printf '\n== %s\n' "$*"; }
mkdir -p target/bench

step "tools"
infra/scripts/tools.sh moto sam cargo-lambda bench-python

step "arm64 zips (cargo lambda build --release --arm64)"
PATH="$REPO/.venv-tools/cargo-lambda/bin:$PATH" \
    cargo lambda build --release --arm64 --output-format zip "${packages[@]}" -p hello-lambda
{
    printf '%-22s %12s %10s\n' function "zip bytes" "zip MB"
    for f in "${FUNCTIONS[@]}" hello-lambda; do
        bytes=$(stat -c %s "target/lambda/$f/bootstrap.zip")
        awk -v f="$f" -v b="$bytes" 'BEGIN { printf "%-22s %12d %10.2f\n", f, b, b / 1000000 }'
    done
} | tee target/bench/zip-sizes.txt

step "release binaries (x86_64, for cold start and CPU per order)"
cargo build --release "${packages[@]}" -p hello-lambda -p retailflow
cargo build -p retailflow # the simulators and load-catalog the runtime checks start

step "cold start ($RUNS runs per process)"
.venv-tools/sam/bin/python bench/coldstart.py --runs "$RUNS" \
    --bin-dir target/release --python .venv-tools/bench-python/bin/python

step "billed AWS requests per order and per return"
RETAILFLOW_SAM_PYTHON="$REPO/.venv-tools/sam/bin/python" \
    cargo test -q -p retailflow-e2e --test aws_wire -- --nocapture saga:: returns:: 2>&1 |
    python3 bench/costs.py

step "CPU per order, whole app in process"
RUST_LOG=error target/release/retailflow bench-orders --orders 2000 --seed 1
