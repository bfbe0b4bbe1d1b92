"""order-publish's step written the way the Powertools documentation shows,
for the cold-start and request-count comparison (`infra/scripts/bench.sh`):
verify the Shopify HMAC, then, under Powertools idempotency on the delivery's
event id (a DynamoDB put of the INPROGRESS record, an update to COMPLETED),
publish the event to EventBridge and write the saga in its own item.

The same AWS resources as the Rust function (moto on loopback): the webhook
secret from Secrets Manager, the event bus, the state table for the saga; the
idempotency records in their own table (`id` key), as Powertools expects."""
import base64
import hashlib
import hmac
import json
import os
import time

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

secrets = boto3.client("secretsmanager")
events = boto3.client("events")
dynamodb = boto3.client("dynamodb")
persistence = DynamoDBPersistenceLayer(table_name=os.environ["BENCH_IDEMPOTENCY_TABLE"])
config = IdempotencyConfig(event_key_jmespath="event_id", expires_after_seconds=7 * 86400)
_secret = None


def shopify_secret():
    global _secret
    if _secret is None:
        doc = json.loads(secrets.get_secret_value(SecretId=os.environ["RETAILFLOW_SECRETS_ARN"])["SecretString"])
        _secret = doc["shopify_secret"].strip()
    return _secret


@idempotent_function(data_keyword_argument="delivery", config=config, persistence_store=persistence)
def publish(delivery):
    order = json.loads(delivery["body"])
    order_key = f"shopify:{delivery['shop']}:order:{order['id']}"
    detail = {"event_id": delivery["event_id"], "correlation_id": order_key, "order": order}
    events.put_events(Entries=[{
        "EventBusName": os.environ["RETAILFLOW_EVENT_BUS"], "Source": "retailflow.intake",
        "DetailType": "OrderPlaced", "Detail": json.dumps(detail)}])
    dynamodb.put_item(TableName=os.environ["RETAILFLOW_STATE_TABLE"], Item={
        "pk": {"S": f"BENCH-SAGA#{order_key}"}, "intake": {"S": "completed"},
        "event_id": {"S": delivery["event_id"]}, "at": {"N": str(int(time.time()))}})
    return {"event_id": delivery["event_id"], "event_type": "OrderPlaced", "correlation_id": order_key}


def handler(event, context):
    config.register_lambda_context(context)
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    expected = base64.b64encode(hmac.new(shopify_secret().encode(), raw, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, headers.get("x-shopify-hmac-sha256", "")):
        return {"statusCode": 401, "body": json.dumps({"error": "signature does not match the body"})}
    delivery = {"event_id": headers.get("x-shopify-event-id", ""), "shop": headers.get("x-shopify-shop-domain", ""),
                "body": raw.decode()}
    return {"statusCode": 200, "body": json.dumps(publish(delivery=delivery))}
