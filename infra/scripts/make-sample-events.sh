#!/usr/bin/env bash
# Regenerates the signed API Gateway events in events/ from the raw platform
# payloads in events/payloads/, signed with the dev keys in events/dev-keys/,
# all stamped at the samples' recorded time (`retailflow send` stamps them
# anew for a running serve).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p retailflow
rf=target/debug/retailflow
p=events/payloads
shop=acme-outdoor.myshopify.com
at=2026-11-26T12:00:00Z
s() { # source topic event-id payload out [extra]
  local src=$1 topic=$2 id=$3 payload=$4 out=$5; shift 5
  "$rf" sample-event --source "$src" --topic "$topic" --shop "$shop" --event-id "$id" --at "$at" "$@" "$p/$payload" > "events/$out"
}
s shopify orders/create 3f1c0a5e-0001-4d7e-9a51-000000000001 shopify-orders-create-discount-code.json 01-shopify-orders-create.json
s shopify orders/create 3f1c0a5e-0001-4d7e-9a51-000000000001 shopify-orders-create-discount-code.json 02-shopify-orders-create-redelivery.json
s shopify orders/create 3f1c0a5e-0001-4d7e-9a51-000000000009 shopify-orders-create-discount-code.json 03-shopify-orders-create-tampered.json --tamper
s shopify orders/create 3f1c0a5e-0001-4d7e-9a51-000000000002 shopify-orders-create-eur-presentment-vat-inclusive.json 04-shopify-orders-create-eur-vat-inclusive.json
s shopify orders/create 3f1c0a5e-0001-4d7e-9a51-000000000003 shopify-orders-create-cad-gift-card.json 05-shopify-orders-create-cad-gift-card.json
s shopify orders/create 3f1c0a5e-0001-4d7e-9a51-000000000004 invalid/shopify-orders-create-totals-mismatch.json 06-shopify-orders-create-totals-mismatch.json
s shopify orders/updated 3f1c0a5e-0001-4d7e-9a51-000000000005 shopify-orders-updated.json 07-shopify-orders-updated.json
s shopify refunds/create 3f1c0a5e-0001-4d7e-9a51-000000000006 shopify-refunds-create-partial-with-shipping.json 08-shopify-refunds-create-partial.json
s shopify orders/cancelled 3f1c0a5e-0001-4d7e-9a51-000000000007 shopify-orders-cancelled-vat-inclusive.json 09-shopify-orders-cancelled.json
s shopify customers/create 3f1c0a5e-0001-4d7e-9a51-000000000008 shopify-orders-updated.json 10-shopify-unhandled-topic.json
"$rf" sample-event --source pos --topic pos/returns --shop store-042 --at "$at" "$p/pos/return-store-042.json" > events/12-pos-return.json
s adobe observer.sales_order_save_after unused adobe-order-configurable.json 11-adobe-order-configurable.json
s adobe observer.sales_order_creditmemo_save_after unused adobe-creditmemo-partial.json 15-adobe-creditmemo-partial.json
s adobe observer.sales_order_save_after unused adobe-order-invoiced.json 16-adobe-order-invoiced.json
s adobe observer.sales_order_creditmemo_save_after unused adobe-creditmemo-adjustment-fee.json 17-adobe-creditmemo-adjustment-fee.json
s adobe observer.sales_order_save_after unused adobe-order-2.json 18-adobe-order-2.json
s adobe observer.sales_order_save_after unused adobe-order-2-canceled.json 19-adobe-order-2-canceled.json
s shopify refunds/create 3f1c0a5e-0001-4d7e-9a51-000000000010 shopify-refunds-create-full-with-shipping.json 13-shopify-refunds-create-full-with-shipping.json
# A refund over what is left of #2187 (after 13's full refund): taken, then
# held for review. In a folder of its own so `run events/` stays clean.
mkdir -p events/review
s shopify refunds/create 3f1c0a5e-0001-4d7e-9a51-000000000011 invalid/shopify-refunds-create-over-total.json review/15-shopify-refunds-create-over-total.json
mkdir -p events/sqs
for q in erp-post loyalty-accrual stock-commit; do
  "$rf" sample-sqs-event --queue "$q" --shop "$shop" "$p/shopify-orders-create-discount-code.json" > "events/sqs/$q-order-placed.json"
done
"$rf" sample-sqs-event --queue return-reversal --shop "$shop" --topic refunds/create \
  "$p/shopify-refunds-create-partial-with-shipping.json" > events/sqs/return-reversal-refund-issued.json
rm -f events/[0-9][0-9]-*.json.tmp
echo "wrote $(ls events/*.json | wc -l) events"
