"""moto server answering one request at a time.

Real DynamoDB applies each conditional write atomically; moto's threaded
server checks a condition and writes without a lock, so two concurrent
conditional writes can both succeed there. Serving requests one at a time
restores the guarantee the AWS-wire tests rely on (concurrent claims: one
winner) without changing what each request does.

Usage: python moto_serialized.py HOST PORT   (the moto venv's python)
"""
import os
import sys

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

host, port = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("MOTO_PORT", str(port))
app = DomainDispatcherApplication(create_backend_app)
run_simple(host, port, app, threaded=False, use_reloader=False, request_handler=MotoRequestHandler)
