"""moto server answering one request at a time, or with DynamoDB's contention.

Real DynamoDB applies each conditional write atomically; moto's threaded
server checks a condition and writes without a lock, so two concurrent
conditional writes can both succeed there. Serving requests one at a time
restores the guarantee the AWS-wire tests rely on (concurrent claims: one
winner) without changing what each request does.

moto never answers a conflict or throttles. With `--contention MS`, requests
are served concurrently but moto itself still runs one request at a time
(under one lock, so every write stays atomic), and DynamoDB calls meet
DynamoDB's contention rules first, answered with its documented error bodies:

- a TransactWriteItems keeps its items busy for MS milliseconds before moto
  applies it; a transaction touching a busy item is refused with
  TransactionCanceledException, reason `TransactionConflict` for that item;
  a PutItem/UpdateItem/DeleteItem on a busy item with
  TransactionConflictException;
- with `--item-wcu N`, an item takes at most N write units a second (two a
  transaction item, one a single write); beyond that a transaction is
  cancelled with reason `ThrottlingError` and a single write refused with
  ThrottlingException (on-demand tables' answer).

`GET /_contention` answers what was refused: {"conflicts": n, "throttled": n}.
The model lives here, in test code: it checks that the adapter reads the
real error shapes, not how DynamoDB schedules.

Usage: python moto_serialized.py HOST PORT [--contention MS] [--item-wcu N]
(the moto venv's python)
"""
import io
import json
import os
import sys
import threading
import time

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

PREFIX = "com.amazonaws.dynamodb.v20120810#"


class Contention:
    def __init__(self, app, busy_seconds, item_wcu):
        self.app = app
        self.busy_seconds = busy_seconds
        self.item_wcu = item_wcu
        self.moto = threading.Lock()
        self.items = threading.Lock()
        self.busy = set()
        self.units = {}
        self.counts = {"conflicts": 0, "throttled": 0}

    def run_moto(self, environ, start_response):
        captured = {}

        def keep(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        with self.moto:
            body = b"".join(self.app(environ, keep))
        start_response(captured["status"], captured["headers"])
        return [body]

    def refuse(self, start_response, error, message, reasons=None):
        doc = {"__type": PREFIX + error, "message": message}
        if reasons is not None:
            doc = {"__type": PREFIX + error, "Message": message, "CancellationReasons": reasons}
        body = json.dumps(doc).encode()
        start_response(
            "400 Bad Request",
            [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def spend(self, key, units):
        """Takes `units` from the item's bucket, refilled at item_wcu a second."""
        if not self.item_wcu:
            return True
        now = time.monotonic()
        left, at = self.units.get(key, (float(self.item_wcu), now))
        left = min(float(self.item_wcu), left + (now - at) * self.item_wcu)
        if left < units:
            self.units[key] = (left, now)
            return False
        self.units[key] = (left - units, now)
        return True

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/_contention":
            body = json.dumps(self.counts).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_20120810."):
            return self.run_moto(environ, start_response)
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(raw)
        op = target.split(".", 1)[1]
        request = json.loads(raw or b"{}")
        if op == "TransactWriteItems":
            return self.transaction(request, environ, start_response)
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            key = item_key(request.get("TableName"), request.get("Key") or request.get("Item"))
            with self.items:
                if key in self.busy:
                    self.counts["conflicts"] += 1
                    return self.refuse(start_response, "TransactionConflictException",
                                       "Transaction is ongoing for the item")
                if not self.spend(key, 1):
                    self.counts["throttled"] += 1
                    return self.refuse(start_response, "ThrottlingException",
                                       "Throughput exceeds the current capacity for one or more items")
        return self.run_moto(environ, start_response)

    def transaction(self, request, environ, start_response):
        keys = []
        for entry in request.get("TransactItems", []):
            (kind, op), = entry.items()
            keys.append(item_key(op.get("TableName"), op.get("Key") or op.get("Item")))
        with self.items:
            reasons = []
            for key in keys:
                if key in self.busy:
                    reasons.append({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"})
                else:
                    reasons.append({"Code": "None"})
            if any(r["Code"] != "None" for r in reasons):
                self.counts["conflicts"] += 1
            elif not all(self.spend(k, 2) for k in keys):
                self.counts["throttled"] += 1
                reasons = [{"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity for one or more items"}
                           for _ in keys]
            else:
                self.busy.update(keys)
                reasons = None
        if reasons is not None:
            codes = ", ".join(r["Code"] for r in reasons)
            return self.refuse(start_response, "TransactionCanceledException",
                               f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
                               reasons)
        try:
            time.sleep(self.busy_seconds)
            return self.run_moto(environ, start_response)
        finally:
            with self.items:
                self.busy.difference_update(keys)


def item_key(table, attributes):
    attributes = attributes or {}
    key = {k: attributes[k] for k in ("pk", "sk") if k in attributes}
    return (table, json.dumps(key, sort_keys=True))


host, port = sys.argv[1], int(sys.argv[2])
options = dict(zip(sys.argv[3::2], sys.argv[4::2]))
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
if "--contention" in options:
    contended = Contention(app, int(options["--contention"]) / 1000.0, int(options.get("--item-wcu", "0")))
    run_simple(host, port, contended, threaded=True, use_reloader=False, request_handler=MotoRequestHandler)
else:
    run_simple(host, port, app, threaded=False, use_reloader=False, request_handler=MotoRequestHandler)
