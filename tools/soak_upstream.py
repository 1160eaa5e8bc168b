#!/usr/bin/env python3
"""A fault-injecting fake of OpenAI's Chat Completions and Anthropic's Messages APIs, on
127.0.0.1, for tools/soak.py.

Normal answers are the providers' documented shapes
(https://platform.openai.com/docs/api-reference/chat/create,
https://docs.anthropic.com/en/api/messages and .../messages-streaming): a
`chat.completion` (with a `tool_calls` answer when the request offers tools) or
`chat.completion.chunk` SSE ending in `data: [DONE]` with a usage chunk; a `message` or
the `message_start` ... `message_stop` event sequence.

Each request draws one fault from a seeded RNG (or takes `[fault:<name>]` from its body):
  error      500 with the provider's error body
  ratelimit  429 with `retry-after: 1` and the provider's reset headers
  hang       never answers (the gateway's attempt timeout must end it)
  reset      the connection is reset after part of the body
  slow       a stream's events 300 ms apart (a JSON answer 1 s late)
  none       a normal answer
`GET /__faults` returns the counts so far. Usage: soak_upstream.py [--seed N]; prints
`upstream listening on http://127.0.0.1:PORT` first.
"""

import argparse
import asyncio
import collections
import json
import random
import re
import time

from aiohttp import web

FAULTS = [("error", 0.07), ("ratelimit", 0.05), ("hang", 0.02), ("reset", 0.04), ("slow", 0.10)]
TEXT = "Hello! How can I assist you today?"
MARKER = re.compile(rb"\[fault:([a-z]+)\]")


class Upstream:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.counts = collections.Counter()

    def fault(self, raw):
        m = MARKER.search(raw)
        if m:
            f = m.group(1).decode()
        else:
            roll, f = self.rng.random(), "none"
            for name, p in FAULTS:
                if roll < p:
                    f = name
                    break
                roll -= p
        self.counts[f] += 1
        return f

    async def faults(self, _request):
        return web.json_response(dict(self.counts))

    async def openai(self, request):
        raw = await request.read()
        body = json.loads(raw)
        f = self.fault(raw)
        early = await common_fault(request, f, openai_error, openai_limits)
        if early is not None:
            return early
        tools = body.get("tools") or []
        if body.get("stream"):
            return await stream(request, openai_events(body, tools), f == "slow", f == "reset", done=True)
        if f == "slow":
            await asyncio.sleep(1)
        return await maybe_reset(request, f, openai_body(body, tools))

    async def anthropic(self, request):
        raw = await request.read()
        body = json.loads(raw)
        f = self.fault(raw)
        early = await common_fault(request, f, anthropic_error, anthropic_limits)
        if early is not None:
            return early
        if body.get("stream"):
            return await stream(request, anthropic_events(body), f == "slow", f == "reset", done=False)
        if f == "slow":
            await asyncio.sleep(1)
        return await maybe_reset(request, f, anthropic_body(body))


async def common_fault(request, f, error_body, limit_headers):
    if f == "error":
        return web.json_response(error_body("server_error", "The server had an error processing your request."), status=500)
    if f == "ratelimit":
        return web.json_response(error_body("rate_limit_error", "Rate limit reached for requests"), status=429,
                                 headers={"retry-after": "1", **limit_headers()})
    if f == "hang":
        await asyncio.sleep(3600)
    return None


async def maybe_reset(request, f, body):
    data = json.dumps(body).encode()
    if f != "reset":
        return web.Response(body=data, content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(len(data))})
    await resp.prepare(request)
    await resp.write(data[: len(data) // 2])
    request.transport.abort()
    return resp


async def stream(request, events, slow, reset, done):
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    for i, (name, payload) in enumerate(events):
        if reset and i == 2:
            request.transport.abort()
            return resp
        head = f"event: {name}\n" if name else ""
        await resp.write(f"{head}data: {json.dumps(payload)}\n\n".encode())
        if slow:
            await asyncio.sleep(0.3)
    if done:
        await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


def usage_counts(body):
    text = json.dumps(body.get("messages", ""))
    return max(1, len(text) // 4), 10


def openai_error(kind, message):
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def openai_limits():
    return {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"}


def tool_args(tools):
    props = ((tools[0].get("function") or {}).get("parameters") or {}).get("properties") or {}
    return json.dumps({k: "Paris" for k in props})


def openai_body(body, tools):
    prompt, completion = usage_counts(body)
    message = {"role": "assistant", "content": TEXT, "refusal": None}
    finish = "stop"
    if tools:
        name = tools[0]["function"]["name"]
        message = {"role": "assistant", "content": None, "refusal": None,
                   "tool_calls": [{"id": "call_abc123", "type": "function", "function": {"name": name, "arguments": tool_args(tools)}}]}
        finish = "tool_calls"
    return {"id": "chatcmpl-soak", "object": "chat.completion", "created": int(time.time()), "model": body.get("model", "gpt-4o-mini"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}


def openai_events(body, tools):
    prompt, completion = usage_counts(body)
    base = {"id": "chatcmpl-soak", "object": "chat.completion.chunk", "created": int(time.time()), "model": body.get("model", "gpt-4o-mini")}
    with_usage = (body.get("stream_options") or {}).get("include_usage")
    def chunk(delta, finish=None):
        c = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
        if with_usage:
            c["usage"] = None
        return (None, c)
    out = [chunk({"role": "assistant", "content": ""})]
    if tools:
        name = tools[0]["function"]["name"]
        args = tool_args(tools)
        out.append(chunk({"tool_calls": [{"index": 0, "id": "call_abc123", "type": "function", "function": {"name": name, "arguments": ""}}]}))
        out += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 8]}}]}) for i in range(0, len(args), 8)]
        out.append(chunk({}, "tool_calls"))
    else:
        out += [chunk({"content": w + " "}) for w in TEXT.split()]
        out.append(chunk({}, "stop"))
    out.append((None, dict(base, choices=[], usage={"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})))
    return out


def anthropic_error(kind, message):
    kind = {"server_error": "api_error"}.get(kind, kind)
    return {"type": "error", "error": {"type": kind, "message": message}}


def anthropic_limits():
    reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    return {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": reset}


def anthropic_body(body):
    prompt, completion = usage_counts(body)
    return {"id": "msg_soak", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion}}


def anthropic_events(body):
    prompt, completion = usage_counts(body)
    out = [("message_start", {"type": "message_start", "message": {
        "id": "msg_soak", "type": "message", "role": "assistant", "model": body.get("model"), "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": prompt, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
    out += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w + " "}})
            for w in TEXT.split()]
    out += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                               "usage": {"output_tokens": completion}}),
            ("message_stop", {"type": "message_stop"})]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    up = Upstream(args.seed)
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", up.openai)
    app.router.add_post("/v1/messages", up.anthropic)
    app.router.add_get("/__faults", up.faults)

    async def run():
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        print(f"upstream listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
