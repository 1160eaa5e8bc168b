#!/usr/bin/env python3
"""Load test of llm-local's usage accounting: one usage entry per request, no more.

Starts, all on 127.0.0.1:
  * an instant fake OpenAI upstream (a tiny asyncio HTTP/1.1 server, in a child process;
    it answers OpenAI's documented chat.completion body, or a 400 `invalid_request_error`
    when the prompt contains FAIL_UPSTREAM, so failures are accounted too),
  * `llm-local serve` pointed at it (LLM_PROVIDER_URL_OPENAI), with a high
    LLM_REQUESTS_PER_MINUTE,
then sends N `POST /api/llm-generate/{user}` (default 3000) at concurrency 32 spread over
a few users (some prompts repeat, so response-cache hits are accounted too), collects every
response's requestId, waits for the background usage writer, stops the gateway, and checks
the `usage` table of <data-dir>/gateway.sqlite3: exactly one entry per request id, under the
right user, and no other entries.

Bounded: N requests, a per-request timeout, and a hard stop after --max-seconds (120).
Everything started is stopped by PID on exit. Exit status 0 only when every check passed.

Usage: .venv/bin/python tools/load_test.py [-n 3000] [-c 32] [--users 4]
       (needs aiohttp: tools/venv.sh installs it; builds nothing: run
        `cargo build --release -p llm-local` first)
"""

import argparse
import asyncio
import collections
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BIN = os.path.join(ROOT, "target", "release", "llm-local")
OPENAI_KEY = "sk-proj-loopbackFakeKey0123456789abcdefghijklmnopqrstuvAbCd"

# ---------------------------------------------------------------------------------------
# The instant upstream (also used by tools/bench_gateway.py when nginx is not installed)

UPSTREAM_BODY = json.dumps(
    {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I assist you today?", "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 19,
            "completion_tokens": 10,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
    },
    separators=(",", ":"),
).encode()

UPSTREAM_ERROR = json.dumps(
    {"error": {"message": "Invalid 'messages': injected failure", "type": "invalid_request_error", "param": "messages", "code": None}}
).encode()


def _http_response(status, reason, body):
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode() + body


OK_RESPONSE = _http_response(200, "OK", UPSTREAM_BODY)
ERR_RESPONSE = _http_response(400, "Bad Request", UPSTREAM_ERROR)
NOT_FOUND = _http_response(404, "Not Found", b'{"error":{"message":"not found"}}')


class _UpstreamProtocol(asyncio.Protocol):
    """Minimal keep-alive HTTP/1.1: request line + headers + Content-Length body."""

    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            path = head.split(b" ", 2)[1] if b" " in head else b""
            if not path.endswith(b"/chat/completions"):
                self.t.write(NOT_FOUND)
            elif b"FAIL_UPSTREAM" in body:
                self.t.write(ERR_RESPONSE)
            else:
                self.t.write(OK_RESPONSE)


def serve_upstream(port=0):
    """Runs the upstream forever (child-process entry point); prints its URL first."""

    async def main():
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(_UpstreamProtocol, "127.0.0.1", port, backlog=1024)
        print(f"upstream listening on http://127.0.0.1:{srv.sockets[0].getsockname()[1]}", flush=True)
        await srv.serve_forever()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


# ---------------------------------------------------------------------------------------
# Process helpers (shared with tools/bench_gateway.py)


class Proc:
    """A child process whose first stdout line names its URL; stdout is drained by a
    thread, stderr goes to a file. stop() ends it by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, argv, env=None, stderr_path=None, name="proc"):
        self.name = name
        self.stderr_path = stderr_path
        self._err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._err, env=env, stdin=subprocess.DEVNULL)
        self.pid = self.p.pid
        self._first = None
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.p.stdout:
            if self._first is None:
                self._first = line.decode(errors="replace").strip()
                self._ready.set()
        self._ready.set()

    def url(self, timeout=15):
        if not self._ready.wait(timeout) or not self._first or "http://" not in self._first:
            raise RuntimeError(f"{self.name} did not start (first line {self._first!r}); see {self.stderr_path}")
        return "http://" + self._first.split("http://", 1)[1].split()[0].rstrip("/")

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        if self._err is not subprocess.DEVNULL:
            self._err.close()
        return self.p.returncode


def start_upstream(tmp):
    p = Proc([sys.executable, os.path.abspath(__file__), "--serve-upstream"], stderr_path=os.path.join(tmp, "upstream.err"), name="upstream")
    return p, p.url()


def create_token(binary, data_dir, user):
    out = subprocess.run([binary, "token", "create", "--user", user, "--data-dir", data_dir], capture_output=True, check=True, timeout=30)
    return out.stdout.decode().strip()


def start_gateway(binary, data_dir, upstream_url, tmp, extra_env=None):
    env = dict(os.environ)
    env.update(
        {
            "LLM_PROVIDER_URL_OPENAI": upstream_url + "/v1",
            "LLM_REQUESTS_PER_MINUTE": "100000000",
            "LLM_PROVIDER_TIMEOUT_SECS": "10",
            "RUST_LOG": env.get("RUST_LOG", "warn"),
        }
    )
    env.update(extra_env or {})
    p = Proc([binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", data_dir], env=env, stderr_path=os.path.join(tmp, "gateway.err"), name="llm-local")
    return p, p.url()


def http_json(method, url, token, body=None, timeout=10):
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def save_openai_key(gateway, token, user, preferences):
    got = http_json("PUT", f"{gateway}/api/llm-settings/{user}", token, {"preferences": preferences, "apiKeys": {"openai": OPENAI_KEY}})
    if not got.get("hasApiKeys", {}).get("openai"):
        raise RuntimeError(f"key not saved for {user}: {got}")


def usage_rows(data_dir):
    path = os.path.join(data_dir, "gateway.sqlite3")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return [(u, json.loads(b)) for u, b in con.execute("SELECT user_id, body FROM usage")]
    finally:
        con.close()


# ---------------------------------------------------------------------------------------
# The load


async def run_load(gateway, users, n, concurrency, fail_every, repeat_every, deadline):
    import aiohttp

    results = []  # (i, user, expected_ok, status, request_id, header_id, cached, error)
    next_i = 0

    async def worker(session):
        nonlocal next_i
        while next_i < n and time.monotonic() < deadline:
            i = next_i
            next_i += 1
            user, token = users[i % len(users)]
            expect_fail = fail_every > 0 and i % fail_every == fail_every - 1
            if expect_fail:
                prompt = f"FAIL_UPSTREAM request {i}"
            elif repeat_every > 0 and i % repeat_every == 0:
                prompt = "a repeated prompt (response cache)"
            else:
                prompt = f"load request {i}"
            body = {"prompt": prompt, "operationType": "conversation", "provider": "openai", "model": "gpt-4o-mini", "maxTokens": 64, "temperature": 0.0}
            try:
                async with session.post(f"{gateway}/api/llm-generate/{user}", json=body, headers={"Authorization": f"Bearer {token}"}) as r:
                    text = await r.text()
                    hdr = r.headers.get("x-request-id")
                    try:
                        j = json.loads(text)
                    except ValueError:
                        j = {}
                    rid = j.get("requestId") or (j.get("error") or {}).get("requestId")
                    results.append((i, user, not expect_fail, r.status, rid, hdr, bool(j.get("cached")), None if r.status == 200 else text[:300]))
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                results.append((i, user, not expect_fail, None, None, None, False, f"{type(e).__name__}: {e}"))

    timeout = aiohttp.ClientTimeout(total=15)
    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=conn) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--requests", type=int, default=3000)
    ap.add_argument("-c", "--concurrency", type=int, default=32)
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--fail-every", type=int, default=50, help="every k-th request makes the upstream answer 400 (0: never)")
    ap.add_argument("--repeat-every", type=int, default=10, help="every k-th request repeats one prompt, so the cache answers (0: never)")
    ap.add_argument("--drain", choices=["stop", "poll"], default="stop",
                    help="stop: SIGTERM the gateway right after the load, so its shutdown must flush the usage writer; "
                         "poll: wait (<= 15 s) until every id is in the table, then stop it")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="hard stop for the whole run")
    ap.add_argument("--bin", default=os.environ.get("LLM_LOCAL_BIN", DEFAULT_BIN))
    ap.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_upstream:
        serve_upstream()
        return 0
    if not os.access(args.bin, os.X_OK):
        print(f"load_test: {args.bin} not found; run: cargo build --release -p llm-local", file=sys.stderr)
        return 2

    t0 = time.monotonic()
    hard_deadline = t0 + args.max_seconds
    # a watchdog: whatever happens, the run ends (children are stopped in `finally`)
    watchdog = threading.Timer(args.max_seconds + 15, lambda: os.kill(os.getpid(), signal.SIGTERM))
    watchdog.daemon = True
    watchdog.start()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit("load_test: hard stop")))

    tmp = tempfile.mkdtemp(prefix="llm_load_")
    data_dir = os.path.join(tmp, "data")
    procs = []
    failures = []
    try:
        up, up_url = start_upstream(tmp)
        procs.append(up)
        users = []
        for k in range(args.users):
            user = f"load-user-{k}"
            users.append((user, create_token(args.bin, data_dir, user)))
        gw, gw_url = start_gateway(args.bin, data_dir, up_url, tmp)
        procs.append(gw)
        for user, token in users:
            save_openai_key(gw_url, token, user, {"trackUsage": True, "enableCaching": True, "monthlyBudgetUsd": 1000.0})
        print(f"load_test: llm-local pid {gw.pid} at {gw_url}, upstream {up_url}; {args.requests} requests, concurrency {args.concurrency}, {len(users)} users")

        # leave 20 s of the budget for draining and checking
        load_deadline = hard_deadline - 20
        t_load = time.monotonic()
        results = asyncio.run(
            asyncio.wait_for(
                run_load(gw_url, users, args.requests, args.concurrency, args.fail_every, args.repeat_every, load_deadline),
                timeout=max(1.0, load_deadline - time.monotonic() + 5),
            )
        )
        elapsed = time.monotonic() - t_load
        print(f"load_test: {len(results)} responses in {elapsed:.1f} s ({len(results) / elapsed:.0f} req/s)")
        if len(results) < args.requests:
            failures.append(f"only {len(results)} of {args.requests} requests sent before the deadline")

        # per-response checks
        by_rid = {}
        statuses = collections.Counter()
        cached = 0
        bad = 0
        for i, user, expect_ok, status, rid, hdr, was_cached, err in results:
            statuses[status] += 1
            cached += was_cached
            ok = True
            if status is None:
                ok = False
                failures.append(f"request {i}: {err}")
            elif expect_ok and status != 200:
                ok = False
                failures.append(f"request {i}: expected 200, got {status}: {err}")
            elif not expect_ok and status not in (400, 502):
                # the upstream's 400 invalid_request_error: the gateway passes it on as 400
                # invalid_request (naming the upstream's `param`) or as 502 provider_error
                ok = False
                failures.append(f"request {i}: expected 400 or 502 (upstream 400), got {status}: {err}")
            if status is not None and not rid:
                ok = False
                failures.append(f"request {i}: no requestId in the body ({status}: {err})")
            if rid and hdr and rid != hdr:
                ok = False
                failures.append(f"request {i}: body requestId {rid} != x-request-id {hdr}")
            if rid:
                if rid in by_rid:
                    ok = False
                    failures.append(f"request {i}: requestId {rid} reused (also request {by_rid[rid][0]})")
                by_rid[rid] = (i, user)
            bad += not ok
        print(f"load_test: statuses {dict(statuses)}, cache hits {cached}")

        # usage entries: with --drain poll, wait until every id is there (background
        # writer); then stop the gateway (SIGTERM; its shutdown should flush the writer) and
        # read the final table
        want = set(by_rid)
        poll_until = min(hard_deadline - 5, time.monotonic() + 15)
        while args.drain == "poll" and time.monotonic() < poll_until:
            if want <= {b.get("request_id") for _, b in usage_rows(data_dir)}:
                break
            time.sleep(0.2)
        if args.drain == "poll":
            time.sleep(0.5)  # let stray writes, if any, land too
        rc = gw.stop()
        procs.remove(gw)
        if rc not in (0, -signal.SIGTERM, 143):
            failures.append(f"llm-local exited with status {rc} on SIGTERM")
        rows = usage_rows(data_dir)
        per_id = collections.Counter(b.get("request_id") for _, b in rows)
        missing = [r for r in want if per_id[r] == 0]
        dup = {r: c for r, c in per_id.items() if c > 1}
        extra = [r for r in per_id if r not in want]
        wrong_user = [(r, u) for u, b in rows if (r := b.get("request_id")) in by_rid and by_rid[r][1] != u]
        usage_status = collections.Counter(b.get("status") for _, b in rows)
        print(f"load_test: usage table has {len(rows)} entries for {len(want)} request ids; statuses {dict(usage_status)}")
        if missing:
            failures.append(f"{len(missing)} request ids have no usage entry, e.g. {missing[:5]}")
        if dup:
            failures.append(f"{len(dup)} request ids have several usage entries, e.g. {list(dup.items())[:5]}")
        if extra:
            failures.append(f"{len(extra)} usage entries match no request, e.g. {extra[:5]}")
        if wrong_user:
            failures.append(f"{len(wrong_user)} usage entries under the wrong user, e.g. {wrong_user[:5]}")
        n_err = sum(1 for _, b in rows if b.get("status") == "error")
        n_expected_err = sum(1 for r in results if not r[2])
        if n_err != n_expected_err:
            failures.append(f"{n_err} usage entries with status error, expected {n_expected_err}")

        passed = len(results) - bad
        accounted = len(want) - len(missing) - len([r for r in dup if r in want])
        print(f"load_test: {passed} passed, {bad + (args.requests - len(results))} failed (responses); "
              f"{accounted} of {len(want)} request ids have exactly one usage entry, {len(extra)} stray entries")
    except BaseException as e:  # the hard stop (SystemExit) or an error: report, keep logs
        failures.append(f"aborted: {e!r}")
        raise
    finally:
        for p in reversed(procs):
            p.stop()
        watchdog.cancel()
        for f in failures[:20]:
            print(f"load_test: FAIL {f}", file=sys.stderr)
        if len(failures) > 20:
            print(f"load_test: ... and {len(failures) - 20} more failures", file=sys.stderr)
        if failures:
            print(f"load_test: logs kept in {tmp}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    print("load_test: FAILED" if failures else "load_test: OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
