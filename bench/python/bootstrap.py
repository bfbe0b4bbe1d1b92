"""A Lambda custom runtime for the Python comparison step, in the standard
library only: import the handler module (its init: boto3 and Powertools), then
loop on the runtime API's next / response calls exactly as the managed Python
runtime does. `_HANDLER` is module.function; `LAMBDA_TASK_ROOT` holds it."""
import http.client
import importlib
import json
import os
import sys
import time

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", os.path.dirname(os.path.abspath(__file__))))
module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
handler = getattr(importlib.import_module(module_name), function_name)


class Context:
    """The attributes Powertools reads from the Lambda context."""

    def __init__(self, request_id, deadline_ms, arn):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "python-step")
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = "/aws/lambda/" + self.function_name
        self.log_stream_name = "bench"
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


conn = http.client.HTTPConnection(API)
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    event = json.loads(r.read())
    request_id = r.getheader("Lambda-Runtime-Aws-Request-Id")
    deadline = int(r.getheader("Lambda-Runtime-Deadline-Ms") or (time.time() + 30) * 1000)
    context = Context(request_id, deadline, r.getheader("Lambda-Runtime-Invoked-Function-Arn") or "")
    try:
        body = json.dumps(handler(event, context))
        path = f"/2018-06-01/runtime/invocation/{request_id}/response"
    except Exception as e:  # reported to the runtime API, as the managed runtime does
        body = json.dumps({"errorMessage": str(e), "errorType": type(e).__name__})
        path = f"/2018-06-01/runtime/invocation/{request_id}/error"
    conn.request("POST", path, body=body.encode(), headers={"content-type": "application/json"})
    conn.getresponse().read()
