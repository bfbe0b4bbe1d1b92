#!/usr/bin/env bash
# Fuzzes the webhook entrypoints (Shopify, Adobe Commerce, the point-of-sale
# return API), the checkout API request and checkout's credentials parser
# with cargo-fuzz (libFuzzer), each for SECONDS (default 120), starting from
# the seed corpus in fuzz/corpus/.
# Needs the nightly toolchain (rustup toolchain install nightly) and
# cargo-fuzz (cargo install cargo-fuzz); on demand, not in the test command
# (which replays the seed corpus on stable: infra/retailflow/tests/app/fuzz_corpus.rs).
# A failing input is left in fuzz/artifacts/<target>/: fix the code, then
# copy the input into fuzz/corpus/<target>/ so the test replays it for good.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO/fuzz"
seconds="${1:-120}"
targets=(shopify_webhook adobe_webhook pos_return checkout_request checkout_auth)
cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
    mkdir -p "work/$t"
    cargo +nightly fuzz run -O "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>&1 |
        grep -aE "stat::number_of_executed_units|stat::new_units_added|Done [0-9]+ runs|ERROR|panicked" |
        sed "s/^/$t: /"
done
