"""Cold start of every retailflow function, side by side with a hello-world
lambda_runtime binary and a Python step using boto3 + Powertools idempotency,
in one run, under a Lambda runtime API emulator on loopback.

For each process: the time from process start to its first
`GET /runtime/invocation/next` (init, what Lambda reports as Init Duration),
to its first response (`POST /runtime/invocation/{id}/response`), and its
peak RSS (ru_maxrss from wait4 after it is killed once it asks for its
second event). Every function runs against moto and the simulators, set up
as the Lambda runtime checks set them up (tests/lambda_runtime/check.py),
with its sample event. order-publish and the Python step get a new delivery
id per run, so every run does the whole step; the other functions' later
runs find their message done (the duplicate path).

Usage: python bench/coldstart.py --bin-dir target/release --python .venv-tools/bench-python/bin/python
Prints a table and writes target/bench/coldstart.json.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lambda_runtime"))
import check  # noqa: E402  (deploy(): moto, simulators, the stack, per-function environment)

PREFIX = "/2018-06-01/runtime"


class Invocation:
    """One cold process's view of the runtime API: one event, then it waits."""

    def __init__(self, event):
        self.event = event
        self.request_id = str(uuid.uuid4())
        self.nexts = []
        self.responded_at = None
        self.response = None
        self.error = None
        self.second_next = threading.Event()
        self.answered = threading.Event()
        self.release = threading.Event()


class Emulator(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.current = None
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        inv = self.server.current
        now = time.perf_counter()
        if inv is None or self.path != f"{PREFIX}/invocation/next":
            return self.send(404)
        inv.nexts.append(now)
        if len(inv.nexts) > 1:
            # Idle, as between invocations: held until the process is killed.
            inv.second_next.set()
            inv.release.wait(60)
            return
        body = json.dumps(inv.event).encode()
        self.send(200, body, {
            "content-type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(int((time.time() + 30) * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
        })

    def do_POST(self):
        inv = self.server.current
        now = time.perf_counter()
        body = self.rfile.read(int(self.headers.get("content-length", "0") or 0))
        if inv is None:
            return self.send(404)
        if self.path.endswith("/response"):
            inv.responded_at, inv.response = now, body
        else:
            inv.responded_at, inv.error = now, body
        inv.answered.set()
        self.send(202, b'{"status":"OK"}', {"content-type": "application/json"})


def cold_run(emulator, cmd, env, event, log):
    inv = Invocation(event)
    emulator.current = inv
    env = {
        **env,
        "AWS_LAMBDA_RUNTIME_API": emulator.address,
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "PATH": os.environ.get("PATH", ""),
    }
    started = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.time() + 60
    reaped = None  # (status, rusage) once the process is gone
    while not inv.answered.is_set() and time.time() < deadline:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:  # it exited by itself (an init failure)
            reaped = (status, usage)
            break
        inv.answered.wait(0.01)
    peak_kb = None
    if reaped is None:
        inv.second_next.wait(2)
        # The process image's own high-water mark (wait4's ru_maxrss would
        # start from this Python parent's, inherited across fork and exec).
        try:
            with open(f"/proc/{p.pid}/status") as f:
                peak_kb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
        except (OSError, StopIteration, ValueError):
            pass
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status, usage = os.wait4(p.pid, 0)
        reaped = (status, usage)
    p.returncode = -9  # reaped here: Popen must not wait for it again
    inv.release.set()
    emulator.current = None
    return {
        "init_ms": (inv.nexts[0] - started) * 1000 if inv.nexts else None,
        "first_response_ms": (inv.responded_at - started) * 1000 if inv.responded_at else None,
        "peak_rss_kb": peak_kb,
        "answer": (inv.response or inv.error or b"").decode(errors="replace")[:300],
        "error": inv.error is not None or inv.response is None,
    }


def fresh_delivery(event):
    """The sample webhook as a new delivery (the signature covers only the body)."""
    e = json.loads(json.dumps(event))
    e["headers"]["x-shopify-event-id"] = str(uuid.uuid4())
    return e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--python", required=True, help="a python with boto3 and aws-lambda-powertools")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench", "coldstart.json"))
    args = ap.parse_args()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    log = open(os.path.join(os.path.dirname(args.out), "coldstart.log"), "w")  # closed at exit

    procs = []
    results = {}
    emulator = Emulator()
    try:
        sim_port, base, functions = check.deploy(procs)
        base = {**base, "RUST_LOG": "info"}
        import boto3
        ddb = boto3.client("dynamodb", endpoint_url=base["AWS_ENDPOINT_URL"], region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
        ddb.create_table(TableName="bench-idempotency", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        # Reconciliation's findings go to a bus without rules: the stack's
        # rule for them has a target moto cannot deliver to (it answers 500).
        boto3.client("events", endpoint_url=base["AWS_ENDPOINT_URL"], region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test").create_event_bus(Name="bench-quiet")
        targets = [("hello-world (lambda_runtime)", [os.path.join(args.bin_dir, "hello-lambda")], {}, {"hello": 1}, False)]
        publish_env = None
        for name, event_file, extra, _ok in functions:
            with open(os.path.join(ROOT, event_file)) as f:
                event = json.load(f)
            env = {**base, **extra}
            if name == "reconciliation":
                env["RETAILFLOW_EVENT_BUS"] = "bench-quiet"
            targets.append((name, [os.path.join(args.bin_dir, name)], env, event, name == "order-publish"))
            if name == "order-publish":
                publish_env, publish_event = {**base, **extra}, event
        targets.append(("python order-publish (boto3 + Powertools)", [args.python, os.path.join(ROOT, "bench", "python", "bootstrap.py")],
                        {**publish_env, "_HANDLER": "order_publish.handler",
                         "LAMBDA_TASK_ROOT": os.path.join(ROOT, "bench", "python"),
                         "BENCH_IDEMPOTENCY_TABLE": "bench-idempotency", "POWERTOOLS_SERVICE_NAME": "bench",
                         "AWS_DEFAULT_REGION": "us-east-1"},
                        publish_event, True))
        # Interleaved rounds, so a slow moment of the machine falls on all alike.
        for round_ in range(args.runs):
            for name, cmd, env, event, fresh in targets:
                if name.startswith("fulfillment-sync") and round_ == 0:
                    check.ship_sample_order(sim_port)
                r = cold_run(emulator, cmd, env, fresh_delivery(event) if fresh else event, log)
                results.setdefault(name, []).append(r)
    finally:
        for p in procs:
            check.stop(p)
        emulator.shutdown()

    def med(name, key):
        xs = [r[key] for r in results[name] if r[key] is not None]
        return statistics.median(xs) if xs else None

    hello = med("hello-world (lambda_runtime)", "init_ms")
    python = "python order-publish (boto3 + Powertools)"
    rows = []
    print(f"cold start, median of {args.runs} runs per process (2 cores, loopback runtime API emulator, moto, simulators)")
    print("(first answer, run 1: the step's whole work; later runs of the SQS and scheduled functions find it done)")
    print(f"{'process':44} {'init ms':>8} {'1st answer, run 1':>18} {'1st answer, median':>19} {'peak RSS MB':>12} {'init / hello':>13} {'init / python':>14}")
    for name in results:
        init, first, rss = med(name, "init_ms"), med(name, "first_response_ms"), med(name, "peak_rss_kb")
        errors = sum(1 for r in results[name] if r["error"])
        run1 = results[name][0]["first_response_ms"]
        row = {"process": name, "init_ms": init, "first_response_ms": first, "first_response_run1_ms": run1,
               "peak_rss_mb": rss / 1024 if rss else None,
               "init_vs_hello": init / hello if init and hello else None,
               "init_vs_python": init / med(python, "init_ms") if init and med(python, "init_ms") else None,
               "runs": args.runs, "runs_answered_with_error": errors,
               "last_answer": results[name][-1]["answer"]}
        rows.append(row)
        fmt = lambda x, f: (f % x) if x is not None else "-"
        print(f"{name:44} {fmt(init, '%.1f'):>8} {fmt(run1, '%.1f'):>18} {fmt(first, '%.1f'):>19} {fmt(rss / 1024 if rss else None, '%.1f'):>12} "
              f"{fmt(row['init_vs_hello'], '%.2f×'):>13} {fmt(row['init_vs_python'], '%.3f×'):>14}"
              + (f"   ({errors} answered with an error)" if errors else ""))
    rust_publish, py = med("order-publish", "first_response_ms"), med(python, "first_response_ms")
    if rust_publish and py:
        print(f"order-publish first answer: Rust {rust_publish:.1f} ms, Python {py:.1f} ms ({rust_publish / py:.3f}×)")
    with open(args.out, "w") as f:
        json.dump({"runs": args.runs, "rows": rows, "raw": results}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
