#!/usr/bin/env python3
"""Benchmark of the llm-settings Lambda, as it runs on AWS, on loopback only.

Measures, in one run:
  * the zip's size (target: under 8 MB);
  * cold start: time from process start to the first handled event posted back to the
    Runtime API (target: under 30 ms), over several cold starts, median and max;
  * peak RSS (VmHWM) after serving a burst of events (target: under 40 MB).

The bootstrap is unzipped and run exactly as Lambda would, against a minimal
implementation of the Lambda Runtime API served here on 127.0.0.1. Its events are API
Gateway HTTP API v2 events with JWT claims; the first one reads settings from DynamoDB
(ministack, started by tools/with_ministack.sh), so the cold start includes building the
SDK clients and a first AWS call.

Usage: tools/with_ministack.sh .venv/bin/python tools/bench_lambda.py <bootstrap.zip>
"""
import http.server
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfeval  # noqa: E402  (reads infra/*.tf, as tools/deploy_local.py does)

INFRA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "infra")
COLD_STARTS = 7
BURST = 300
TARGET_ZIP_MB, TARGET_COLD_MS, TARGET_RSS_MB = 8, 30, 40


def event(method, user, body=None, sub=None):
    path = f"/api/llm-settings/{user}"
    ev = {
        "version": "2.0", "routeKey": f"{method} /api/llm-settings/{{userId}}",
        "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "bench.local"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "stage": "$default",
            "requestId": str(uuid.uuid4()), "routeKey": f"{method} /api/llm-settings/{{userId}}",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "authorizer": {"jwt": {"claims": {"sub": sub or user}, "scopes": None}},
            "time": "22/Nov/2026:10:30:00 +0000", "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        ev["body"] = json.dumps(body)
    return ev


class RuntimeApi(http.server.ThreadingHTTPServer):
    """Hands out queued events on /next and records when each response arrives."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.events = queue.Queue()
        self.responses = queue.Queue()

    def handle_error(self, request, client_address):
        # A killed bootstrap leaves a pending /next whose socket is gone: expected here.
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_error(404)
            return
        request_id, ev = self.server.events.get()
        body = json.dumps(ev).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 10_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:llm-settings")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        payload = self.rfile.read(length)
        arrived = time.perf_counter()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server.responses.put((arrived, self.path, payload))


def settings_table_args(name):
    """CreateTable arguments of the settings table as infra/dynamodb.tf declares it (the
    key schema; the Rust tests build theirs from shared/src/store/dynamodb/tables.rs,
    which a unit test holds to the same .tf)."""
    ev = tfeval.Evaluator(INFRA)
    body = ev.module["resource"][("aws_dynamodb_table", "settings")]
    ks = [{"AttributeName": ev.value(body["hash_key"], {}), "KeyType": "HASH"}]
    if "range_key" in body:
        ks.append({"AttributeName": ev.value(body["range_key"], {}), "KeyType": "RANGE"})
    attrs = [{"AttributeName": ev.value(a["name"], {}), "AttributeType": ev.value(a["type"], {})}
             for a in body.get("attribute", [])]
    return {"TableName": name, "BillingMode": "PAY_PER_REQUEST", "KeySchema": ks,
            "AttributeDefinitions": attrs}


def run_bootstrap(bootstrap, api, env):
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{api.server_address[1]}")
    started = time.perf_counter()
    proc = subprocess.Popen([bootstrap], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return started, proc


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    zip_path = sys.argv[1]
    zip_mb = os.path.getsize(zip_path) / 1e6
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    assert endpoint.startswith("http://127.0.0.1:"), "loopback emulator only"

    table = f"bench-settings-{uuid.uuid4().hex[:8]}"
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    ddb.create_table(**settings_table_args(table))

    work = tempfile.mkdtemp(prefix="bench-lambda-")
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(work)
    bootstrap = os.path.join(work, "bootstrap")
    os.chmod(bootstrap, 0o755)
    env = {
        "PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_LAMBDA_FUNCTION_NAME": "llm-settings", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/llm-settings",
        "SETTINGS_TABLE": table, "SECRET_PREFIX": "bench/", "SECRET_RECOVERY_DAYS": "0",
        "RUST_LOG": "warn",
    }

    cold = []
    for i in range(COLD_STARTS):
        # A fresh Runtime API per process: a killed process's pending /next must not
        # swallow the next process's event.
        api = RuntimeApi()
        threading.Thread(target=api.serve_forever, daemon=True).start()
        api.events.put((f"cold-{i}", event("GET", f"user-{i}")))
        started, proc = run_bootstrap(bootstrap, api, env)
        try:
            arrived, path, payload = api.responses.get(timeout=10)
        except queue.Empty:
            proc.kill()
            sys.exit("no response from the bootstrap within 10 s: " + proc.stderr.read().decode()[-2000:])
        status = json.loads(payload).get("statusCode")
        assert status == 200, f"first event answered {status}: {payload[:300]!r}"
        cold.append((arrived - started) * 1000)
        if i < COLD_STARTS - 1:
            proc.kill()
            proc.wait()
            api.shutdown()

    # Warm burst on the last process: writes and reads, then peak RSS.
    for i in range(BURST):
        if i % 2:
            ev = event("PUT", "burst-user", {"preferences": {"maxTokens": 100 + i}})
        else:
            ev = event("GET", "burst-user")
        api.events.put((f"warm-{i}", ev))
    warm_started = time.perf_counter()
    for _ in range(BURST):
        _, _, payload = api.responses.get(timeout=10)
        status = json.loads(payload).get("statusCode")
        assert status == 200, payload[:300]
    warm_s = time.perf_counter() - warm_started
    rss = peak_rss_mb(proc.pid)
    proc.kill()
    proc.wait()
    api.shutdown()

    cold_med, cold_max = statistics.median(cold), max(cold)
    rows = [
        ("zip size", f"{zip_mb:.2f} MB", f"< {TARGET_ZIP_MB} MB", zip_mb < TARGET_ZIP_MB),
        ("cold start to first handled event (median of %d)" % COLD_STARTS, f"{cold_med:.1f} ms", f"< {TARGET_COLD_MS} ms", cold_med < TARGET_COLD_MS),
        ("cold start, worst", f"{cold_max:.1f} ms", "", True),
        ("peak RSS after %d events" % BURST, f"{rss:.1f} MB", f"< {TARGET_RSS_MB} MB", rss < TARGET_RSS_MB),
        ("warm events/s (1 process, emulator-bound)", f"{BURST / warm_s:.0f}", "", True),
    ]
    print("\nllm-settings Lambda benchmark (loopback Runtime API, DynamoDB in ministack)")
    for name, value, target, ok in rows:
        print(f"  {name:<52} {value:>10}  {target:<10} {'' if not target else ('ok' if ok else 'MISSED')}")
    print("  note: the first event includes SDK client construction and one GetItem against the emulator")


if __name__ == "__main__":
    main()
