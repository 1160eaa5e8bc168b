#!/usr/bin/env python3
"""Gateway overhead benchmark (`make bench`): direct-to-upstream vs through llm-local.

In one run, on 127.0.0.1 only:
  * an upstream that answers instantly with OpenAI's documented chat.completion body:
    nginx (Debian's, run with its own config in a temp dir; `return 200 '<json>'`) when
    installed, else the asyncio upstream of tools/load_test.py;
  * llm-local pointed at it, with one user whose OpenAI key is saved, usage tracking on,
    a monthly budget on (block), the response cache off and the rate limit lifted;
  * a load generator: wrk (compiled; a Lua script sends the POST body and prints exact
    percentiles) when installed, else a Python asyncio/aiohttp client, which is itself
    likely the bottleneck (the report says which one was used).
For each target, (a) the upstream directly, (b) llm-local's `POST /v1/chat/completions` and
(c) llm-local's `POST /api/llm-generate/{user}`: p50/p99 latency at concurrency 1 and
requests/s at concurrency 32, each for --duration seconds after a short warm-up. Then the
gateway's peak RSS (VmHWM from /proc). Prints the figures beside the targets:
added p50 <= 0.1 ms, throughput >= 25% of direct at c=32, RSS < 50 MB.

Not a test: exits 0 whether or not the targets are met (--strict: 1 when one is missed),
non-zero when the setup fails. Everything started is stopped by PID on exit.

Usage: .venv/bin/python tools/bench_gateway.py [--duration 3] [--upstream auto|nginx|python]
                                              [--client auto|wrk|python] [--json FILE]
Needs target/release/llm-local (cargo build --release -p llm-local); optional:
apt-get install -y wrk nginx.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load_test as lt  # noqa: E402  (shared upstream body, process helpers)

TARGET_ADDED_P50_MS = 0.1
TARGET_THROUGHPUT_RATIO = 0.25
TARGET_RSS_MB = 50.0

CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64, "temperature": 0.7}
GENERATE_BODY = {"prompt": "Hello!", "operationType": "conversation", "provider": "openai", "model": "gpt-4o-mini", "maxTokens": 64, "temperature": 0.7}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


class Nginx:
    """nginx -p TMP -c TMP/nginx.conf, foreground master; stop() by its PID."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(self.dir)
        port = free_port()
        body = lt.UPSTREAM_BODY.decode()
        assert "'" not in body and "$" not in body
        conf = f"""
worker_processes 1;
daemon off;
master_process on;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location = /v1/chat/completions {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.p = subprocess.Popen(
            ["nginx", "-p", self.dir, "-c", path, "-e", os.path.join(self.dir, "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr.log"), "wb"),
        )
        self.pid = self.p.pid
        wait_port(port, self.p)
        self._url = f"http://127.0.0.1:{port}"

    def url(self):
        return self._url

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)  # fast shutdown of master and its workers
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        return self.p.returncode


# ---------------------------------------------------------------------------------------
# Load generators. Each returns {"requests", "seconds", "rps", "p50_ms", "p99_ms", "errors"}.

WRK_LUA = r"""
wrk.method = "POST"
wrk.body = [==[%BODY%]==]
wrk.headers["Content-Type"] = "application/json"
%AUTH%
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def run_wrk(url, body, token, concurrency, seconds, tmp):
    script = os.path.join(tmp, f"bench_{abs(hash((url, concurrency)))}.lua")
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    with open(script, "w") as f:
        f.write(WRK_LUA.replace("%BODY%", json.dumps(body)).replace("%AUTH%", auth))
    threads = min(concurrency, os.cpu_count() or 1, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", script, url],
        capture_output=True, text=True, timeout=seconds + 30,
    )
    line = next((l for l in out.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
    j = json.loads(line.split(" ", 1)[1])
    secs = j["duration_us"] / 1e6
    return {"requests": j["requests"], "seconds": secs, "rps": j["requests"] / secs, "p50_ms": j["p50_us"] / 1000, "p99_ms": j["p99_us"] / 1000, "errors": j["errors"]}


def run_python(url, body, token, concurrency, seconds, _tmp):
    import aiohttp

    async def go():
        lat = []
        errors = 0
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        end = time.monotonic() + seconds

        async def worker(session):
            nonlocal errors
            while time.monotonic() < end:
                t = time.perf_counter()
                try:
                    async with session.post(url, data=data, headers=headers) as r:
                        await r.read()
                        if r.status != 200:
                            errors += 1
                except Exception:  # noqa: BLE001
                    errors += 1
                    continue
                lat.append(time.perf_counter() - t)

        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=10)) as s:
            t0 = time.monotonic()
            await asyncio.gather(*(worker(s) for _ in range(concurrency)))
            secs = time.monotonic() - t0
        lat.sort()
        pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")  # noqa: E731
        return {"requests": len(lat), "seconds": secs, "rps": len(lat) / secs, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "errors": errors}

    return asyncio.run(go())


def vm_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) / 1024  # kB -> MiB
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (max 10)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--upstream", choices=["auto", "nginx", "python"], default="auto")
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--bin", default=os.environ.get("LLM_LOCAL_BIN", lt.DEFAULT_BIN))
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()
    args.duration = max(1.0, min(args.duration, 10.0))
    if not os.access(args.bin, os.X_OK):
        print(f"bench: {args.bin} not found; run: cargo build --release -p llm-local", file=sys.stderr)
        return 2
    use_nginx = args.upstream == "nginx" or (args.upstream == "auto" and shutil.which("nginx"))
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    if not use_wrk:
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            print("bench: neither wrk nor aiohttp; apt-get install -y wrk, or run tools/venv.sh", file=sys.stderr)
            return 2
    client = run_wrk if use_wrk else run_python
    client_name = "wrk (compiled)" if use_wrk else "python asyncio/aiohttp (may be the bottleneck)"

    tmp = tempfile.mkdtemp(prefix="llm_bench_")
    procs = []
    rows = []
    summary = {}
    try:
        if use_nginx:
            up = Nginx(tmp)
            up_url = up.url()
            up_name = "nginx (static body)"
        else:
            up, up_url = lt.start_upstream(tmp)
            up_name = "python asyncio upstream"
        procs.append(up)
        data_dir = os.path.join(tmp, "data")
        user = "bench-user"
        token = lt.create_token(args.bin, data_dir, user)
        gw, gw_url = lt.start_gateway(args.bin, data_dir, up_url, tmp)
        procs.append(gw)
        lt.save_openai_key(gw_url, token, user, {"trackUsage": True, "enableCaching": False, "monthlyBudgetUsd": 1000.0, "budgetAction": "block"})
        # sanity: each target answers 200 with the upstream's text
        direct = lt.http_json("POST", f"{up_url}/v1/chat/completions", "", CHAT_BODY)
        chat = lt.http_json("POST", f"{gw_url}/v1/chat/completions", token, CHAT_BODY)
        gen = lt.http_json("POST", f"{gw_url}/api/llm-generate/{user}", token, GENERATE_BODY)
        text = direct["choices"][0]["message"]["content"]
        assert chat["choices"][0]["message"]["content"] == text, chat
        assert gen["content"] == text, gen
        rss_idle = vm_status(gw.pid)

        print(f"bench: upstream {up_name} at {up_url}; llm-local pid {gw.pid} at {gw_url}")
        print(f"bench: load generator {client_name}; {args.duration:g} s per measurement; {os.cpu_count()} CPUs shared by all processes")
        targets = [
            ("direct upstream", f"{up_url}/v1/chat/completions", CHAT_BODY, None),
            ("llm-local /v1/chat/completions", f"{gw_url}/v1/chat/completions", CHAT_BODY, token),
            ("llm-local /api/llm-generate", f"{gw_url}/api/llm-generate/{user}", GENERATE_BODY, token),
        ]
        for name, url, body, tok in targets:
            client(url, body, tok, args.concurrency, args.warmup, tmp)
            one = client(url, body, tok, 1, args.duration, tmp)
            many = client(url, body, tok, args.concurrency, args.duration, tmp)
            rows.append({"target": name, "c1": one, "cN": many})
            print(f"bench:   measured {name}", flush=True)
        rss = vm_status(gw.pid)
        time.sleep(0.5)
        gw.stop()
        procs.remove(gw)
        n_usage = len(lt.usage_rows(data_dir))
    except BaseException:
        print(f"bench: failed; logs kept in {tmp}", file=sys.stderr)
        raise
    finally:
        for p in reversed(procs):
            p.stop()

    d = rows[0]
    print()
    print(f"{'target':32} {'p50 c=1':>10} {'p99 c=1':>10} {'req/s c=' + str(args.concurrency):>12} {'p50 c=' + str(args.concurrency):>10} {'p99 c=' + str(args.concurrency):>10} {'errors':>7}")
    for r in rows:
        print(f"{r['target']:32} {r['c1']['p50_ms']:8.3f}ms {r['c1']['p99_ms']:8.3f}ms {r['cN']['rps']:12.0f} "
              f"{r['cN']['p50_ms']:8.3f}ms {r['cN']['p99_ms']:8.3f}ms {r['c1']['errors'] + r['cN']['errors']:7d}")
    print()
    ok_all = True
    for r in rows[1:]:
        added50 = r["c1"]["p50_ms"] - d["c1"]["p50_ms"]
        added99 = r["c1"]["p99_ms"] - d["c1"]["p99_ms"]
        ratio = r["cN"]["rps"] / d["cN"]["rps"] if d["cN"]["rps"] else float("nan")
        ok50 = added50 <= TARGET_ADDED_P50_MS
        okr = ratio >= TARGET_THROUGHPUT_RATIO
        ok_all &= ok50 and okr
        summary[r["target"]] = {"added_p50_ms": added50, "added_p99_ms": added99, "throughput_ratio": ratio}
        print(f"{r['target']}:")
        print(f"  added latency p50 (c=1)    {added50:8.3f} ms   target <= {TARGET_ADDED_P50_MS} ms   {'MET' if ok50 else 'MISSED'}")
        print(f"  added latency p99 (c=1)    {added99:8.3f} ms")
        print(f"  throughput vs direct       {ratio * 100:7.1f} %    target >= {TARGET_THROUGHPUT_RATIO * 100:.0f} %      {'MET' if okr else 'MISSED'}")
    okm = rss["VmHWM"] < TARGET_RSS_MB
    ok_all &= okm
    print(f"llm-local RSS: peak (VmHWM) {rss['VmHWM']:.1f} MiB, now {rss['VmRSS']:.1f} MiB, idle after start {rss_idle['VmRSS']:.1f} MiB   "
          f"target < {TARGET_RSS_MB:.0f} MB   {'MET' if okm else 'MISSED'}")
    total = sum(r["c1"]["requests"] + r["cN"]["requests"] for r in rows[1:])
    print(f"usage entries written: {n_usage} (>= {total} measured gateway requests + warm-ups and requests in flight at each cut-off)")
    print(f"load generator: {client_name}; upstream: {up_name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"client": client_name, "upstream": up_name, "rows": rows, "summary": summary, "rss_mib": rss, "usage_entries": n_usage}, f, indent=2)
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if (args.strict and not ok_all) else 0


if __name__ == "__main__":
    sys.exit(main())
