"""Billed AWS requests per order and per return, and what they cost.

Reads the `bench-requests <flow> <step> dynamodb=N eventbridge=M` lines the
AWS-wire tests print (tests/aws_wire/saga.rs, tests/aws_wire/returns.rs):
requests the real aws-sdk-rust clients made to moto, counted by request
interceptors on the clients retailflow's adapters use. Beside them, the same
flows in a Powertools-style design: per step an idempotency put (INPROGRESS)
and update (COMPLETED) plus a separate saga write, the same events, and the
same domain reads and writes (saga reads, refund ledger). Then $ per million
from public list prices (us-east-1).

Usage: cargo test -p retailflow-e2e --test aws_wire -- --nocapture saga:: returns:: | python bench/costs.py
"""
import json
import os
import re
import sys

# us-east-1 list prices, USD per million, as published on the AWS pricing
# pages (aws.amazon.com/dynamodb/pricing/on-demand, /eventbridge/pricing,
# /sqs/pricing, /lambda/pricing, /api-gateway/pricing) in November 2026.
PRICE = {
    "dynamodb_write_unit": 0.625,  # on-demand, per write request unit (1 KB)
    "eventbridge_event": 1.00,     # custom events published
    "sqs_request": 0.40,           # standard queue, per 64 KB request
    "lambda_request": 0.20,
    "http_api_request": 1.00,      # API Gateway HTTP API, first 300 M
}

# How many idempotent units of work each measured step does (each a claim +
# completion in retailflow; put + update + saga write in the Powertools
# design), and its domain requests besides, which both designs make. Intake
# records the delivery (a conditional write), then starts the saga, before
# it publishes: two writes, not one transaction, which bills each item
# twice. erp-post on NetSuite posts without a claim (the ERP upserts on
# the external id): a saga read (a cancelled order is never posted again)
# and a completion write.
STEPS = {
    ("order", "intake"): {"units": 1, "kind": "record, then saga"},
    ("order", "erp-post"): {"units": 1, "kind": "complete only"},
    ("order", "loyalty-accrual"): {"units": 1, "kind": "claim+complete"},
    # loyalty reversal and credit memo; the rest: two saga reads, the refund ledger write
    ("refund", "return-reversal"): {"units": 2, "kind": "claim+complete"},
    # plus the shop's refund of a till return
    ("till-return", "return-reversal"): {"units": 3, "kind": "claim+complete"},
    # the till's nonce claim is a request the Powertools design makes too
    ("till-return", "intake"): {"units": 1, "kind": "record, then saga"},
}

FLOWS = {
    "order (intake + ERP + loyalty)": [("order", "intake"), ("order", "erp-post"), ("order", "loyalty-accrual")],
    "return (Shopify refund: intake + reversal)": [("order", "intake"), ("refund", "return-reversal")],
    "till return (POS: intake + reversal + shop refund)": [("till-return", "intake"), ("till-return", "return-reversal")],
}


def powertools_style(step, measured):
    ddb, eb = measured
    units, kind = STEPS[step]["units"], STEPS[step]["kind"]
    # claim+complete, and a record then its saga, are two writes per unit.
    ours_idempotency = units * (2 if kind in ("claim+complete", "record, then saga") else 1)
    domain = ddb - ours_idempotency
    return units * 3 + domain, eb


def main():
    measured, item_bytes = {}, {}
    for line in sys.stdin:
        m = re.search(r"bench-requests (\S+) (\S+) dynamodb=(\d+) eventbridge=(\d+)", line)
        if m:
            measured[(m.group(1), m.group(2))] = (int(m.group(3)), int(m.group(4)))
        m = re.search(r"bench-item-bytes order (\S+) (\S+) (\d+)", line)
        if m:
            stage = item_bytes.setdefault(m.group(1), {})
            stage[m.group(2)] = max(stage.get(m.group(2), 0), int(m.group(3)))
    missing = [s for steps in FLOWS.values() for s in steps if s not in measured]
    if missing:
        sys.exit(f"costs: no measurement for {missing}: did the AWS-wire tests run with --nocapture?")

    rows = []
    print("billed AWS requests made by retailflow's adapters, counted on the real SDK clients against moto")
    print(f"{'flow':52} {'retailflow':>10} {'Powertools-style':>17} {'$/M retailflow':>15} {'$/M Powertools':>15}")
    for flow, steps in FLOWS.items():
        ours = [measured[s] for s in steps]
        pt = [powertools_style(s, measured[s]) for s in steps]
        o_ddb, o_eb = sum(d for d, _ in ours), sum(e for _, e in ours)
        p_ddb, p_eb = sum(d for d, _ in pt), sum(e for _, e in pt)
        cost = lambda ddb, eb: ddb * PRICE["dynamodb_write_unit"] + eb * PRICE["eventbridge_event"]
        row = {"flow": flow, "retailflow": {"dynamodb": o_ddb, "eventbridge": o_eb, "total": o_ddb + o_eb,
                                            "usd_per_million": round(cost(o_ddb, o_eb), 3)},
               "powertools_style": {"dynamodb": p_ddb, "eventbridge": p_eb, "total": p_ddb + p_eb,
                                    "usd_per_million": round(cost(p_ddb, p_eb), 3)},
               "steps": {f"{f}/{s}": measured[(f, s)] for f, s in steps}}
        rows.append(row)
        print(f"{flow:52} {o_ddb + o_eb:>4} ({o_ddb}+{o_eb}) {p_ddb + p_eb:>9} ({p_ddb}+{p_eb}) "
              f"{row['retailflow']['usd_per_million']:>15.3f} {row['powertools_style']['usd_per_million']:>15.3f}")
    print("  (n+m: DynamoDB + EventBridge; $ counts every DynamoDB request as one write unit, items up to 1 KB: an upper bound for the reads, a lower one for items over 1 KB)")
    # What both designs pay alike per order: the webhook through API Gateway,
    # the Lambda invocations (order-publish; erp-post and loyalty-accrual;
    # stock-commit for OrderPlaced and for OrderPostedToErp), and per step
    # message an EventBridge-to-SQS send plus the event source mapping's
    # receive and delete (batch of one; idle long polls not counted).
    platform = PRICE["http_api_request"] + 5 * PRICE["lambda_request"] + 4 * 3 * PRICE["sqs_request"]
    print(f"  both designs also pay per order, alike: API Gateway 1, Lambda 5 invocations, SQS 12 requests "
          f"= ${platform:.2f} per million orders, plus Lambda duration")
    # DynamoDB bills a write per KB of the item written (an update: the
    # larger of before and after) and a consistent read per 4 KB. Sizes
    # are those of the items after each step; a claim is billed at the
    # step's final size (an upper bound: the claim writes less).
    missing = [st for st in ("intake", "erp-post", "loyalty-accrual") if st not in item_bytes]
    if missing:
        sys.exit(f"costs: no item sizes after {missing}: did the AWS-wire saga test run with --nocapture?")
    kb = lambda b: max(1, -(-b // 1024))
    saga = {st: item_bytes[st].get("saga", 0) for st in ("intake", "erp-post", "loyalty-accrual")}
    delivery = item_bytes["intake"].get("delivery", 0)
    writes = {
        "intake: the delivery record": kb(delivery),
        "intake: the saga started": kb(saga["intake"]),
        "erp-post: completion": kb(max(saga["intake"], saga["erp-post"])),
        "loyalty-accrual: claim": kb(max(saga["erp-post"], saga["loyalty-accrual"])),
        "loyalty-accrual: completion": kb(saga["loyalty-accrual"]),
    }
    ours_wru = sum(writes.values())
    ours_rru = -(-saga["intake"] // 4096)         # erp-post's consistent saga read
    saga_kb = kb(saga["loyalty-accrual"])
    # Powertools: small idempotency records (1 unit each), and a saga write
    # per step, priced here at 1 KB (lower bound) and at retailflow's saga size.
    pt_low, pt_high = 3 * 2 + 3 * 1, 3 * 2 + 3 * saga_kb
    read_price = PRICE["dynamodb_write_unit"] / 5  # on-demand: a read unit costs a fifth of a write unit
    o_usd = ours_wru * PRICE["dynamodb_write_unit"] + ours_rru * read_price + 3 * PRICE["eventbridge_event"]
    print("write units per order, by item size (saga item "
          + ", ".join(f"{saga[st]} bytes after {st}" for st in saga)
          + f"; delivery record {delivery} bytes):")
    for what, units in writes.items():
        print(f"  {what:34} {units}")
    print(f"per order retailflow writes {ours_wru} units (target ≤ 8) and reads {ours_rru}: "
          f"${o_usd:.3f} per million orders; Powertools-style {pt_low}–{pt_high} units and the same read: "
          f"${pt_low * PRICE['dynamodb_write_unit'] + read_price + 3 * PRICE['eventbridge_event']:.3f}"
          f"–${pt_high * PRICE['dynamodb_write_unit'] + ours_rru * read_price + 3 * PRICE['eventbridge_event']:.3f}")
    dup = [measured.get(("order", s)) for s in ("intake-redelivery", "erp-post-redelivered", "loyalty-accrual-redelivered")]
    if all(dup):
        print(f"a duplicate delivery of an order: {sum(d for d, _ in dup)} DynamoDB + {sum(e for _, e in dup)} EventBridge "
              f"(published again, erp-post and loyalty-accrual find their work done and publish their stored events again; "
              f"stock-commit, not counted here, does the same); "
              f"Powertools-style: 1 (the refused put)")
    order = rows[0]
    print(f"order: {ours_wru} DynamoDB write units (target ≤ 8) in {order['retailflow']['total']} requests, vs "
          f"{pt_low}–{pt_high} units in {order['powertools_style']['total']} requests Powertools-style")
    out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target", "bench", "requests.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"prices_usd_per_million": PRICE, "rows": rows, "platform_usd_per_million_orders": platform,
                   "item_bytes": item_bytes, "order_write_units": {"retailflow": ours_wru, "retailflow_read_units": ours_rru,
                                                                   "powertools_style": [pt_low, pt_high]}}, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
