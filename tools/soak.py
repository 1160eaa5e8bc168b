#!/usr/bin/env python3
"""Soak of llm-local under faults: mixed traffic for a fixed time, then the books.

Starts, all on 127.0.0.1: tools/soak_upstream.py (a fake OpenAI + Anthropic that answers
with 500s, 429s with reset headers, hangs, resets and slow streams, drawn from a seeded
RNG) and `llm-local serve` pointed at it, with a 3 s attempt timeout and an 8 s request
deadline so hangs end. Then, for --seconds (default 1200), --concurrency workers send:

  * generate JSON and streams, OpenAI chat completions (JSON, streams, tools), Anthropic
    messages (JSON, streams), as users whose OpenAI and Anthropic keys are saved with
    failover on;
  * repeated prompts (response-cache hits), clients that leave mid-request or mid-stream;
  * a user whose budget is near its limit (block) on an expensive model, so reservations
    race the limit; a tenant member on the tenant's key;
  * admin writes (user limits, a registry toggle) and tenant and user settings writes.

Samples the gateway's RSS, open descriptors and /health every few seconds. Afterwards:

  * every answered request id has exactly one usage entry (refusals and failures too),
    no entry is duplicated, and entries nobody saw an id for are at most the requests cut
    before their headers arrived;
  * no reservation is left (budget API `reserved_usd == 0`), no user spent past a limit,
    and the store's month counters equal the sum of the entries' costs, to the nano-dollar;
  * RSS and descriptors stay flat after warm-up (RSS within +25 % and +20 MiB, descriptors
    within +16);
  * no saved key appears in any response, the gateway log, /metrics, or any file of the
    data directory (the SQLite database, its WAL, everything).

Bounded: a watchdog ends the run at --seconds + 120. Every process started is stopped by
PID. Exit status 0 only when every check passed.

Usage: .venv/bin/python tools/soak.py [--seconds 1200] [--concurrency 16] [--seed 7]
       (needs aiohttp, from tools/venv.sh; run `cargo build --release -p llm-local` first)
"""

import argparse
import asyncio
import collections
import decimal
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_test import DEFAULT_BIN, Proc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPENAI_KEY = "sk-proj-soakOpenAiKey4f1c2a9b7e6d5c4b3a2918273645aBcD"
ANTHROPIC_KEY = "sk-ant-api03-soakAnthropicKey8e7d6c5b4a39281706f5e4d3c2b1-QwErTy"
TENANT_OPENAI_KEY = "sk-proj-soakTenantKey0a1b2c3d4e5f60718293a4b5c6d7e8f9ZyXw"
KEYS = [OPENAI_KEY, ANTHROPIC_KEY, TENANT_OPENAI_KEY]
CHEAP = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-20241022"}
EXPENSIVE = "claude-3-opus-20240229"
TENANT = "soak-tenant"
# statuses a generation may end with under these faults; each has its usage entry
ACCOUNTED = {200, 402, 429, 502, 503, 504}
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}


def cli(binary, data_dir, *args):
    out = subprocess.run([binary, *args, "--data-dir", data_dir], capture_output=True, check=True, timeout=30)
    return out.stdout.decode().strip()


def call(method, url, token, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
        return r.status, (json.loads(raw, parse_float=decimal.Decimal) if raw else None)


def nanos(v):
    return int((decimal.Decimal(str(v)) * 1_000_000_000).to_integral_value())


class Books:
    """What the clients saw: request ids by user, statuses, leaks, cut requests."""

    def __init__(self):
        self.ids = {}  # request id -> (user, status, kind)
        self.dup_ids = []
        self.statuses = collections.Counter()
        self.kinds = collections.Counter()
        self.unexpected = []
        self.cut_without_id = 0
        self.leaks = []
        self.writes = collections.Counter()

    def saw(self, kind, user, status, rid, text):
        self.kinds[kind] += 1
        self.statuses[status] += 1
        for k in KEYS:
            if k in text:
                self.leaks.append(f"{kind} response ({status}) contains a saved key")
        if status not in ACCOUNTED:
            self.unexpected.append(f"{kind} as {user}: {status} {text[:200]}")
        if rid:
            if rid in self.ids:
                self.dup_ids.append(rid)
            self.ids[rid] = (user, status, kind)
        elif status in ACCOUNTED:
            self.unexpected.append(f"{kind} as {user}: {status} without a request id")


def request_id(headers, text):
    rid = headers.get("x-request-id")
    if rid:
        return rid
    try:
        j = json.loads(text)
    except ValueError:
        return None
    return j.get("requestId") or (j.get("error") or {}).get("requestId") if isinstance(j, dict) else None


class Traffic:
    def __init__(self, gw, users, tight, member, tenant_admin, admin, toggle_id, books, rng):
        self.gw, self.users, self.tight, self.member = gw, users, tight, member
        self.tenant_admin, self.admin, self.toggle_id = tenant_admin, admin, toggle_id
        self.books, self.rng = books, rng
        self.n = 0

    def prompt(self):
        self.n += 1
        if self.rng.random() < 0.15:
            return "a repeated prompt for the response cache"
        return f"soak request {self.n}: tell me about {self.rng.choice(['Paris', 'Lima', 'Oslo', 'Kyoto'])}"

    def pick(self):
        kinds = [("gen_json", 20), ("gen_stream", 12), ("chat_json", 12), ("chat_stream_tools", 10),
                 ("messages_json", 8), ("messages_stream", 8), ("cut_stream", 5), ("cut_json", 4),
                 ("tight", 10), ("member", 6), ("writes", 5)]
        return self.rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]

    async def one(self, session):
        kind = self.pick()
        user, token = self.rng.choice(self.users)
        provider = self.rng.choice(["openai", "anthropic"])
        if kind in ("gen_json", "gen_stream", "cut_stream", "cut_json"):
            body = {"prompt": self.prompt(), "provider": provider, "model": CHEAP[provider], "maxTokens": 64,
                    "cache": True, "stream": kind in ("gen_stream", "cut_stream")}
            url = f"{self.gw}/api/llm-generate/{user}"
        elif kind in ("chat_json", "chat_stream_tools"):
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": self.prompt()}], "max_tokens": 64}
            if kind == "chat_stream_tools":
                body.update(stream=True, tools=[TOOL], stream_options={"include_usage": True})
            url = f"{self.gw}/v1/chat/completions"
        elif kind in ("messages_json", "messages_stream"):
            body = {"model": CHEAP["anthropic"], "max_tokens": 64, "messages": [{"role": "user", "content": self.prompt()}],
                    "stream": kind == "messages_stream"}
            url = f"{self.gw}/v1/messages"
        elif kind == "tight":
            user, token = self.tight
            body = {"prompt": self.prompt(), "provider": "anthropic", "model": EXPENSIVE, "maxTokens": 1000, "cache": False}
            url = f"{self.gw}/api/llm-generate/{user}"
        elif kind == "member":
            user, token = self.member
            body = {"prompt": self.prompt(), "provider": "openai", "model": CHEAP["openai"], "maxTokens": 64}
            url = f"{self.gw}/api/llm-generate/{user}"
        else:
            return await self.write(session)
        headers = {"Authorization": f"Bearer {token}"}
        if kind == "cut_json":
            # leave before the answer: the gateway must still account for it
            try:
                async with session.post(url, json=body, headers=headers, timeout=aiohttp_timeout(0.05)) as r:
                    text = await r.text()
                    self.books.saw(kind, user, r.status, request_id(r.headers, text), text)
            except (asyncio.TimeoutError, OSError):
                self.books.kinds[kind] += 1
                self.books.cut_without_id += 1
            return
        async with session.post(url, json=body, headers=headers) as r:
            if kind == "cut_stream" and r.status == 200:
                await r.content.readany()  # the first bytes, then leave
                rid = r.headers.get("x-request-id")
                r.close()
                self.books.saw(kind, user, r.status, rid, "")
                return
            text = await r.text()
            self.books.saw(kind, user, r.status, request_id(r.headers, text), text)

    async def write(self, session):
        roll = self.rng.random()
        if roll < 0.3:
            user, token = self.rng.choice(self.users)
            method, url, tok = "PUT", f"{self.gw}/api/llm-settings/{user}", token
            body, what = {"preferences": {"temperature": round(self.rng.random(), 2)}}, "user settings"
        elif roll < 0.55:
            method, url, tok = "PUT", f"{self.gw}/api/tenants/{TENANT}/llm-settings", self.tenant_admin
            body, what = {"preferences": {"maxTokens": self.rng.choice([64, 128, 256])}}, "tenant settings"
        elif roll < 0.8:
            user, _ = self.rng.choice(self.users)
            method, url, tok = "PUT", f"{self.gw}/api/admin/users/{user}/limits", self.admin
            body, what = {"monthlyBudgetUsd": 1000.0, "requestsPerMinute": 100000}, "admin limits"
        else:
            method, url, tok = "POST", f"{self.gw}/api/admin/llms/{self.toggle_id}/toggle", self.admin
            body, what = None, "registry toggle"
        async with session.request(method, url, json=body, headers={"Authorization": f"Bearer {tok}"}) as r:
            text = await r.text()
            self.books.writes[what] += 1
            for k in KEYS:
                if k in text:
                    self.books.leaks.append(f"{what} response contains a saved key")
            if r.status == 409 and '"version_conflict"' in text:
                # two writers raced for the same entry: the loser is told, nothing is lost
                self.books.writes[f"{what} (409 conflict)"] += 1
            elif r.status != 200:
                self.books.unexpected.append(f"{what}: {r.status} {text[:200]}")


def aiohttp_timeout(total):
    import aiohttp

    return aiohttp.ClientTimeout(total=total)


async def run_traffic(traffic, concurrency, until):
    import aiohttp

    async def worker(session):
        while time.monotonic() < until:
            try:
                await traffic.one(session)
            except Exception as e:  # noqa: BLE001 - a client-side failure is a finding
                traffic.books.unexpected.append(f"client error: {type(e).__name__}: {e}")

    conn = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), connector=conn) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))


class Sampler(threading.Thread):
    """RSS (KiB), open descriptors and /health of the gateway, every `every` seconds."""

    def __init__(self, pid, gw, every):
        super().__init__(daemon=True)
        self.pid, self.gw, self.every = pid, gw, every
        self.samples = []  # (t, rss_kib, fds, health_ok)
        self.stop_flag = threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self.stop_flag.wait(self.every):
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
                fds = len(os.listdir(f"/proc/{self.pid}/fd"))
            except OSError:
                break
            try:
                with urllib.request.urlopen(f"{self.gw}/health", timeout=5) as r:
                    ok = r.status == 200
            except OSError:
                ok = False
            self.samples.append((time.monotonic() - t0, rss, fds, ok))


def scan_for_keys(paths):
    found = []
    for root in paths:
        walk = [(root, [], [""])] if os.path.isfile(root) else os.walk(root)
        for d, _, files in walk:
            for name in files:
                p = os.path.join(d, name) if name else d
                try:
                    with open(p, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                found += [f"{p} contains a saved key" for k in KEYS if k.encode() in data]
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=1200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bin", default=os.environ.get("LLM_LOCAL_BIN", DEFAULT_BIN))
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        print(f"soak: {args.bin} not found; run: cargo build --release -p llm-local", file=sys.stderr)
        return 2
    watchdog = threading.Timer(args.seconds + 120, lambda: os.kill(os.getpid(), signal.SIGTERM))
    watchdog.daemon = True
    watchdog.start()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit("soak: hard stop")))

    tmp = tempfile.mkdtemp(prefix="llm_soak_")
    data = os.path.join(tmp, "data")
    procs, failures = [], []
    books = Books()
    try:
        up = Proc([sys.executable, os.path.join(ROOT, "tools", "soak_upstream.py"), "--seed", str(args.seed)],
                  stderr_path=os.path.join(tmp, "upstream.err"), name="soak upstream")
        procs.append(up)
        up_url = up.url()
        users = [(f"soak-user-{i}", None) for i in range(4)]
        users = [(u, cli(args.bin, data, "token", "create", "--user", u)) for u, _ in users]
        tight = ("soak-tight", cli(args.bin, data, "token", "create", "--user", "soak-tight"))
        member = ("soak-member", cli(args.bin, data, "token", "create", "--user", "soak-member", "--tenant", TENANT))
        tenant_admin = cli(args.bin, data, "token", "create", "--user", "soak-tenant-admin", "--tenant", TENANT, "--tenant-admin")
        admin = cli(args.bin, data, "token", "create", "--user", "soak-admin", "--admin")
        env = dict(os.environ, LLM_PROVIDER_URL_OPENAI=up_url + "/v1", LLM_PROVIDER_URL_ANTHROPIC=up_url,
                   LLM_PROVIDER_TIMEOUT_SECS="3", LLM_REQUEST_DEADLINE_SECS="8", LLM_MAX_RETRIES="1",
                   LLM_REQUESTS_PER_MINUTE="1000000", RUST_LOG=os.environ.get("RUST_LOG", "info"))
        gw = Proc([args.bin, "serve", "--addr", "127.0.0.1:0", "--data-dir", data], env=env,
                  stderr_path=os.path.join(tmp, "gateway.log"), name="llm-local")
        procs.append(gw)
        g = gw.url()
        prefs = {"trackUsage": True, "enableCaching": True, "autoFailover": True, "maxTokens": 64}
        for u, t in users:
            call("PUT", f"{g}/api/llm-settings/{u}", t, {"preferences": dict(prefs, defaultProvider="openai",
                 fallbackProviders=["anthropic"], monthlyBudgetUsd=1000.0, budgetAction="block"),
                 "apiKeys": {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY}})
        tight_limit = 0.15
        call("PUT", f"{g}/api/llm-settings/{tight[0]}", tight[1], {"preferences": dict(prefs, defaultProvider="anthropic",
             fallbackProviders=[], monthlyBudgetUsd=tight_limit, budgetAction="block"), "apiKeys": {"anthropic": ANTHROPIC_KEY}})
        call("PUT", f"{g}/api/tenants/{TENANT}/llm-settings", tenant_admin,
             {"preferences": dict(prefs, defaultProvider="openai", monthlyBudgetUsd=500.0), "apiKeys": {"openai": TENANT_OPENAI_KEY}})
        _, registry = call("GET", f"{g}/api/admin/llms?limit=200", admin)
        entries = registry.get("items") or registry.get("llms") or registry.get("entries") or []
        spare = [e for e in entries if e.get("provider") not in ("openai", "anthropic") and not e.get("is_default")]
        if not spare:
            raise RuntimeError(f"no registry entry to toggle in {str(registry)[:300]}")
        toggle_id = spare[0]["id"]
        print(f"soak: llm-local pid {gw.pid} at {g}, upstream {up_url}; {args.seconds:.0f} s at concurrency "
              f"{args.concurrency}, seed {args.seed}", flush=True)

        sampler = Sampler(gw.pid, g, every=max(2.0, min(10.0, args.seconds / 60)))
        sampler.start()
        traffic = Traffic(g, users, tight, member, tenant_admin, admin, toggle_id, books, random.Random(args.seed))
        t0 = time.monotonic()
        asyncio.run(run_traffic(traffic, args.concurrency, t0 + args.seconds))
        elapsed = time.monotonic() - t0
        sampler.stop_flag.set()
        sampler.join()
        total = sum(books.kinds.values())
        print(f"soak: {total} requests in {elapsed:.0f} s ({total / elapsed:.0f}/s); kinds {dict(books.kinds)}")
        print(f"soak: statuses {dict(books.statuses)}; writes {dict(books.writes)}; cut before headers {books.cut_without_id}")
        with urllib.request.urlopen(f"{up_url}/__faults", timeout=5) as r:
            print(f"soak: upstream faults injected {json.load(r)}")
        failures += books.unexpected[:20] + ([f"... {len(books.unexpected) - 20} more"] if len(books.unexpected) > 20 else [])
        failures += [f"request id {r} seen twice" for r in books.dup_ids[:5]]

        # no reservation left once the lifecycle has drained the cut requests
        accounts = [u for u, _ in users] + [tight[0], member[0]]
        tokens = dict(users + [tight, member])
        budgets = {}
        drain_until = time.monotonic() + 20
        while True:
            budgets = {u: call("GET", f"{g}/api/llm-usage/{u}/budget", tokens[u])[1] for u in accounts}
            if all(b["reserved_usd"] == 0 for b in budgets.values()) or time.monotonic() > drain_until:
                break
            time.sleep(0.5)
        for u, b in budgets.items():
            if b["reserved_usd"] != 0:
                failures.append(f"{u}: {b['reserved_usd']} USD still reserved after the drain")
            if b["limit_usd"] is not None and b["spent_usd"] > b["limit_usd"]:
                failures.append(f"{u}: spent {b['spent_usd']} past the limit {b['limit_usd']}")
        tb = budgets[tight[0]]
        print(f"soak: tight user spent {tb['spent_usd']} of {tb['limit_usd']} USD; "
              f"{sum(1 for v in books.ids.values() if v[0] == tight[0] and v[1] == 402)} refused")
        with urllib.request.urlopen(f"{g}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        failures += ["/metrics contains a saved key" for k in KEYS if k in metrics]

        # flat RSS and descriptors after warm-up (the first quarter of the run)
        s = sampler.samples
        if len(s) < 4:
            failures.append(f"only {len(s)} resource samples")
        else:
            warm = s[len(s) // 4]
            late = s[3 * len(s) // 4:]
            rss_max, fd_max = max(x[1] for x in late), max(x[2] for x in late)
            print(f"soak: RSS {warm[1] // 1024} MiB after warm-up -> max {rss_max // 1024} MiB in the last quarter; "
                  f"fds {warm[2]} -> max {fd_max}; {len(s)} samples, /health failed {sum(not x[3] for x in s)}")
            if rss_max > warm[1] * 1.25 + 20 * 1024:
                failures.append(f"RSS grew from {warm[1]} KiB to {rss_max} KiB")
            if fd_max > warm[2] + 16:
                failures.append(f"descriptors grew from {warm[2]} to {fd_max}")
            failures += [f"/health failed at {t:.0f} s" for t, _, _, ok in s if not ok][:5]

        rc = gw.stop(timeout=30)
        procs.remove(gw)
        if rc not in (0, -signal.SIGTERM, 143):
            failures.append(f"llm-local exited with status {rc} on SIGTERM")
        failures += check_store(data, books, accounts)
        failures += scan_for_keys([data, os.path.join(tmp, "gateway.log")])
        failures += books.leaks[:5]
    except BaseException as e:  # the hard stop or an error: report, keep the logs
        failures.append(f"aborted: {e!r}")
        raise
    finally:
        for p in reversed(procs):
            p.stop()
        watchdog.cancel()
        for f in failures:
            print(f"soak: FAIL {f}", file=sys.stderr)
        if failures:
            print(f"soak: logs kept in {tmp}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    print("soak: FAILED" if failures else "soak: OK")
    return 1 if failures else 0


def check_store(data, books, accounts):
    """One entry per seen id, no duplicates, and counters equal to the entries' costs."""
    failures = []
    con = sqlite3.connect(f"file:{os.path.join(data, 'gateway.sqlite3')}?mode=ro", uri=True, timeout=10)
    try:
        rows = [(u, json.loads(b, parse_float=decimal.Decimal)) for u, b in con.execute("SELECT user_id, body FROM usage")]
        counters = {u: spent for u, spent in con.execute("SELECT user_id, SUM(spent) FROM budgets GROUP BY user_id")}
    finally:
        con.close()
    per_id = collections.Counter(b.get("request_id") for _, b in rows)
    dup = [r for r, c in per_id.items() if c > 1]
    missing = [r for r, (_, status, _) in books.ids.items() if status in ACCOUNTED and per_id[r] == 0]
    wrong_user = [r for u, b in rows if (r := b.get("request_id")) in books.ids and books.ids[r][0] != u]
    unseen = [r for r in per_id if r not in books.ids]
    print(f"soak: {len(rows)} usage entries for {len(books.ids)} ids seen; {len(unseen)} for requests cut before "
          f"their headers ({books.cut_without_id} such requests)")
    if missing:
        failures.append(f"{len(missing)} request ids have no usage entry (lost records), e.g. {missing[:5]}")
    if dup:
        failures.append(f"{len(dup)} request ids have several usage entries, e.g. {dup[:5]}")
    if wrong_user:
        failures.append(f"{len(wrong_user)} entries under the wrong user, e.g. {wrong_user[:5]}")
    if len(unseen) > books.cut_without_id:
        failures.append(f"{len(unseen)} entries match no request, more than the {books.cut_without_id} cut ones")
    for u in accounts:
        cost = sum(nanos(b["cost_usd"]) for uu, b in rows if uu == u and b.get("cost_usd") is not None)
        if counters.get(u, 0) != cost:
            failures.append(f"{u}: month counter {counters.get(u, 0)} nano-USD != entries' sum {cost}")
    tenant_cost = sum(nanos(b["cost_usd"]) for _, b in rows if b.get("tenant_id") == TENANT and b.get("cost_usd") is not None)
    if counters.get(f"tenant/{TENANT}", 0) != tenant_cost:
        failures.append(f"tenant {TENANT}: month counter {counters.get(f'tenant/{TENANT}', 0)} != its members' sum {tenant_cost}")
    classes = collections.Counter((b.get("status"), b.get("error_type")) for _, b in rows)
    print("soak: usage entries by status/class " + ", ".join(f"{s}/{e or '-'} {n}" for (s, e), n in classes.most_common()))
    print(f"soak: month counters equal the entries' costs for {len(accounts)} users and tenant {TENANT} "
          f"({sum(counters.values())} nano-USD in all)" if not failures else "soak: books do not balance")
    return failures


if __name__ == "__main__":
    sys.exit(main())
