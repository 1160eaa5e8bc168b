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
For each target, (a) the upstream directly, (b) llm-local's `POST /api/llm-generate/{user}`,
(c) its `POST /v1/chat/completions`: p50/p99 latency at concurrency 1 and requests/s at concurrency 32, each for --duration
seconds after a short warm-up, and CPU time per request of the serving process (utime +
stime from /proc/<pid>/stat over the measurement, divided by its requests). Then the
gateway's peak RSS (VmHWM). Prints the figures beside the targets: added p50 <= 0.1 ms,
added p99 <= 1 ms, throughput >= 25% of direct at c=32, RSS < 50 MB.

--baseline-bin OTHER measures a second llm-local build (e.g. the previous commit's) the
same way in the same run, after the first, against the same upstream and client.
--perf FILE profiles the gateway with `perf record` during one more c=1 and c=32 run of
generate and writes where the time goes (tools/perf_categories.py: self time grouped into
kernel scheduling, TCP, file writes, SQLite, allocation, HTTP, ... and the top symbols) to
FILE; give it a binary with symbols (cargo build --profile profiling -p llm-local, then
--bin target/profiling/llm-local). What the durable usage write alone costs is measured
by shared/examples/bench_write.rs (also run by `make bench`).

Not a test: exits 0 whether or not the targets are met (--strict: 1 when one is missed),
non-zero when the setup fails. Everything started is stopped by PID on exit.

Usage: .venv/bin/python tools/bench_gateway.py [--duration 3] [--upstream auto|nginx|python]
                                              [--client auto|wrk|python] [--json FILE]
                                              [--baseline-bin BIN] [--perf FILE]
Needs target/release/llm-local (cargo build --release -p llm-local); optional:
apt-get install -y wrk nginx (and linux-perf for --perf).
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
TARGET_ADDED_P99_MS = 1.0
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


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """utime + stime of the processes (and their threads), in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def measured(client, url, body, token, concurrency, seconds, tmp, pids):
    """One measurement, with the CPU the processes in `pids` spent per request."""
    before = cpu_seconds(pids)
    r = client(url, body, token, concurrency, seconds, tmp)
    spent = cpu_seconds(pids) - before
    r["cpu_us_per_req"] = spent * 1e6 / r["requests"] if r["requests"] else float("nan")
    return r


class Gateway:
    """An llm-local with the two benchmark users (see the module docstring)."""

    def __init__(self, binary, tmp, name, up_url):
        self.binary, self.name = binary, name
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        data_dir = os.path.join(self.dir, "data")
        self.data_dir = data_dir
        self.user = "bench-user"
        self.token = lt.create_token(binary, data_dir, self.user)
        self.proc, self.url = lt.start_gateway(binary, data_dir, up_url, self.dir)
        self.pid = self.proc.pid
        lt.save_openai_key(self.url, self.token, self.user, {"trackUsage": True, "enableCaching": False, "monthlyBudgetUsd": 1000.0, "budgetAction": "block"})
        self.rss_idle = vm_status(self.pid)

    def targets(self, label):
        g = self.url
        return [
            (f"{label} /api/llm-generate", f"{g}/api/llm-generate/{self.user}", GENERATE_BODY, self.token),
            (f"{label} /v1/chat/completions", f"{g}/v1/chat/completions", CHAT_BODY, self.token),
        ]

    def check(self, up_text):
        chat = lt.http_json("POST", f"{self.url}/v1/chat/completions", self.token, CHAT_BODY)
        gen = lt.http_json("POST", f"{self.url}/api/llm-generate/{self.user}", self.token, GENERATE_BODY)
        assert chat["choices"][0]["message"]["content"] == up_text, chat
        assert gen["content"] == up_text, gen

    def stop(self):
        rss = vm_status(self.pid)
        time.sleep(0.5)
        self.proc.stop()
        rows = lt.usage_rows(self.data_dir)
        return rss, rows


def perf_profile(gw, client, args, tmp, out_path):
    """perf record (self time, no call graphs) on the gateway during one c=1 and one c=32
    run of generate; the flat report, grouped by binary and symbol, goes to out_path."""
    if not shutil.which("perf"):
        print("bench: perf not installed (apt-get install linux-perf); no profile", file=sys.stderr)
        return
    name, url, body, tok = gw.targets("profile")[0]
    for conc in (1, args.concurrency):
        data = os.path.join(tmp, f"perf-c{conc}.data")
        rec = subprocess.Popen(["perf", "record", "-F", "1999", "-p", str(gw.pid), "-o", data, "--", "sleep", str(args.duration + 0.5)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        r = client(url, body, tok, conc, args.duration, tmp)
        rec.wait(args.duration + 30)
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,symbol", "--percent-limit", "0"],
                             capture_output=True, text=True, timeout=300)
        cats = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "perf_categories.py")],
                              input=rep.stdout, capture_output=True, text=True, timeout=60)
        with open(out_path, "a") as f:
            f.write(f"# generate at concurrency {conc}: {r['requests']} requests, {r['rps']:.0f} req/s, {r['p50_ms']:.3f} ms p50\n")
            f.write(cats.stdout)
            f.write("\n")
    print(f"bench: profile written to {out_path}")


def measure_all(gw, label, client, args, tmp, pids):
    rows = []
    for name, url, body, tok in gw.targets(label):
        client(url, body, tok, args.concurrency, args.warmup, tmp)
        one = measured(client, url, body, tok, 1, args.duration, tmp, pids)
        many = measured(client, url, body, tok, args.concurrency, args.duration, tmp, pids)
        rows.append({"target": name, "c1": one, "cN": many})
        print(f"bench:   measured {name}", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (max 10)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--upstream", choices=["auto", "nginx", "python"], default="auto")
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--bin", default=os.environ.get("LLM_LOCAL_BIN", lt.DEFAULT_BIN))
    ap.add_argument("--baseline-bin", help="another llm-local build to measure the same way in the same run")
    ap.add_argument("--perf", help="write a perf profile of the gateway (generate, c=1 and c=N) to this file")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args()
    args.duration = max(1.0, min(args.duration, 10.0))
    for b in [args.bin] + ([args.baseline_bin] if args.baseline_bin else []):
        if not os.access(b, os.X_OK):
            print(f"bench: {b} not found; run: cargo build --release -p llm-local", file=sys.stderr)
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
    gateways = {}
    try:
        if use_nginx:
            up = Nginx(tmp)
            up_url = up.url()
            up_name = "nginx (static body)"
            up_pids = [up.pid] + children(up.pid)
        else:
            up, up_url = lt.start_upstream(tmp)
            up_name = "python asyncio upstream"
            up_pids = [up.pid]
        procs.append(up)
        direct = lt.http_json("POST", f"{up_url}/v1/chat/completions", "", CHAT_BODY)
        text = direct["choices"][0]["message"]["content"]
        print(f"bench: upstream {up_name} at {up_url}; load generator {client_name}; "
              f"{args.duration:g} s per measurement; {os.cpu_count()} CPUs shared by all processes")
        name = "direct upstream"
        target = f"{up_url}/v1/chat/completions"
        client(target, CHAT_BODY, None, args.concurrency, args.warmup, tmp)
        one = measured(client, target, CHAT_BODY, None, 1, args.duration, tmp, up_pids)
        many = measured(client, target, CHAT_BODY, None, args.concurrency, args.duration, tmp, up_pids)
        rows.append({"target": name, "c1": one, "cN": many})
        print(f"bench:   measured {name}", flush=True)

        builds = [("baseline", args.baseline_bin)] if args.baseline_bin else []
        builds.append(("llm-local", args.bin))
        for label, binary in builds:
            gw = Gateway(binary, tmp, label, up_url)
            procs.append(gw.proc)
            gw.check(text)
            print(f"bench: {label} ({binary}) pid {gw.pid} at {gw.url}")
            rows += measure_all(gw, label, client, args, tmp, [gw.pid])
            if args.perf and label == "llm-local":
                perf_profile(gw, client, args, tmp, args.perf)
            rss, usage = gw.stop()
            procs.remove(gw.proc)
            gateways[label] = {"rss_mib": rss, "rss_idle_mib": gw.rss_idle["VmRSS"], "usage_entries": len(usage)}
    except BaseException:
        print(f"bench: failed; logs kept in {tmp}", file=sys.stderr)
        raise
    finally:
        for p in reversed(procs):
            p.stop()

    d = rows[0]
    print()
    hdr = f"{'target':40} {'p50 c=1':>10} {'p99 c=1':>10} {'CPU/req c=1':>12} {'req/s c=' + str(args.concurrency):>12} {'p99 c=' + str(args.concurrency):>10} {'CPU/req c=' + str(args.concurrency):>13} {'errors':>7}"
    print(hdr)
    for r in rows:
        print(f"{r['target']:40} {r['c1']['p50_ms']:8.3f}ms {r['c1']['p99_ms']:8.3f}ms {r['c1']['cpu_us_per_req']:10.1f}us {r['cN']['rps']:12.0f} "
              f"{r['cN']['p99_ms']:8.3f}ms {r['cN']['cpu_us_per_req']:11.1f}us {r['c1']['errors'] + r['cN']['errors']:7d}")
    print("(CPU/req: the upstream's for the direct row, the gateway's otherwise; the gateway rows' upstream CPU is not included)")
    print()
    ok_all = True
    summary = {}
    for r in rows[1:]:
        added50 = r["c1"]["p50_ms"] - d["c1"]["p50_ms"]
        added99 = r["c1"]["p99_ms"] - d["c1"]["p99_ms"]
        ratio = r["cN"]["rps"] / d["cN"]["rps"] if d["cN"]["rps"] else float("nan")
        ok50, ok99, okr = added50 <= TARGET_ADDED_P50_MS, added99 <= TARGET_ADDED_P99_MS, ratio >= TARGET_THROUGHPUT_RATIO
        if r["target"].startswith("llm-local"):
            ok_all &= ok50 and ok99 and okr
        summary[r["target"]] = {"added_p50_ms": added50, "added_p99_ms": added99, "throughput_ratio": ratio}
        print(f"{r['target']}:")
        print(f"  added latency p50 (c=1)    {added50:8.3f} ms   target <= {TARGET_ADDED_P50_MS} ms   {'MET' if ok50 else 'MISSED'}")
        print(f"  added latency p99 (c=1)    {added99:8.3f} ms   target <= {TARGET_ADDED_P99_MS} ms     {'MET' if ok99 else 'MISSED'}")
        print(f"  throughput vs direct       {ratio * 100:7.1f} %    target >= {TARGET_THROUGHPUT_RATIO * 100:.0f} %      {'MET' if okr else 'MISSED'}")
    for label, g in gateways.items():
        okm = g["rss_mib"]["VmHWM"] < TARGET_RSS_MB
        if label == "llm-local":
            ok_all &= okm
        print(f"{label} RSS: peak (VmHWM) {g['rss_mib']['VmHWM']:.1f} MiB, at the end {g['rss_mib']['VmRSS']:.1f} MiB, idle after start "
              f"{g['rss_idle_mib']:.1f} MiB   target < {TARGET_RSS_MB:.0f} MB   {'MET' if okm else 'MISSED'}")
        mine = [r for r in rows if r["target"].startswith(label + " ")]
        written = sum(r["c1"]["requests"] + r["cN"]["requests"] for r in mine)
        print(f"{label} usage entries written: {g['usage_entries']} (>= {written} measured requests + warm-ups and requests in flight at each cut-off)")
    print(f"load generator: {client_name}; upstream: {up_name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"client": client_name, "upstream": up_name, "rows": rows, "summary": summary, "gateways": gateways}, f, indent=2)
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if (args.strict and not ok_all) else 0


if __name__ == "__main__":
    sys.exit(main())
