#!/usr/bin/env python3
"""A loopback fake of two upstreams at once, for tests only: Anthropic's Messages API
(`POST /v1/messages`) and OpenAI's Chat Completions (`POST /v1/chat/completions`).

Anthropic answers follow https://docs.anthropic.com/en/api/messages (a `message` object)
and its streaming guide (`message_start`, `content_block_start` / `_delta` / `_stop`,
`message_delta`, `message_stop`, with a `ping`). OpenAI answers follow its API reference
(`chat.completion`, or `chat.completion.chunk` events ending in `data: [DONE]`).

Both decide the same way: a request that offers tools and has no tool result yet calls
`get_weather` with `{"city": "Paris"}`; otherwise it answers text. Streamed tool calls
arrive in several argument fragments, as real ones do.

`GET /__requests` returns `{"path", "body"}` of every request so far.

Usage: fake_upstream.py [--port 0]   prints `fake-upstream listening on
http://127.0.0.1:PORT` as its first stdout line. Binds 127.0.0.1 only.
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TEXT = "Hello from the fake upstream!"
STREAM_PIECES = ["Hello", " from", " the", " stream", "!"]
AFTER_TOOL_TEXT = "It is 18C and sunny in Paris."
TOOL_ARGS_PIECES = ['{"ci', 'ty": "Pa', 'ris"}']
TOOL_ID = "toolu_01A09q90qw90lq917835lq9"
CALL_ID = "call_DdmO9pD3xa9XTPNJ32zg2hcA"
USAGE_IN, USAGE_OUT = 21, 9

_received = []
_lock = threading.Lock()


def wants_tool(body):
    """A tool call is due when tools are offered and nothing has answered one yet."""
    if not body.get("tools"):
        return False
    for m in body.get("messages", []):
        if m.get("role") == "tool":
            return False
        content = m.get("content")
        if isinstance(content, list) and any(b.get("type") == "tool_result" for b in content):
            return False
    return True


def text_after(body):
    return AFTER_TOOL_TEXT if body.get("tools") else TEXT


# ---- Anthropic ----------------------------------------------------------------------

def anthropic_message(body):
    if wants_tool(body):
        content = [{"type": "tool_use", "id": TOOL_ID, "name": "get_weather", "input": {"city": "Paris"}}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": text_after(body)}]
        stop = "end_turn"
    return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
            "model": body.get("model"), "content": content, "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def anthropic_events(body):
    yield "message_start", {"type": "message_start", "message": {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant",
        "content": [], "model": body.get("model"), "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": USAGE_IN, "output_tokens": 1}}}
    if wants_tool(body):
        yield "content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": TOOL_ID, "name": "get_weather", "input": {}}}
        yield "ping", {"type": "ping"}
        for piece in TOOL_ARGS_PIECES:
            yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "input_json_delta", "partial_json": piece}}
        stop = "tool_use"
    else:
        yield "content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}
        yield "ping", {"type": "ping"}
        for piece in STREAM_PIECES:
            yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": piece}}
        stop = "end_turn"
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                            "usage": {"output_tokens": USAGE_OUT}}
    yield "message_stop", {"type": "message_stop"}


# ---- OpenAI -------------------------------------------------------------------------

def openai_completion(body):
    usage = {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT, "total_tokens": USAGE_IN + USAGE_OUT}
    if wants_tool(body):
        message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
            {"id": CALL_ID, "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]}
        finish = "tool_calls"
    else:
        message = {"role": "assistant", "content": text_after(body), "refusal": None}
        finish = "stop"
    return {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion",
            "created": 1741569952, "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage}


def openai_chunks(body):
    base = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
            "model": body.get("model"), "system_fingerprint": "fp_44709d6fcb"}

    def chunk(delta, finish=None):
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    if wants_tool(body):
        yield chunk({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": CALL_ID, "type": "function", "function": {"name": "get_weather", "arguments": ""}}]})
        for piece in TOOL_ARGS_PIECES:
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls")
    else:
        yield chunk({"role": "assistant", "content": ""})
        for piece in STREAM_PIECES:
            yield chunk({"content": piece})
        yield chunk({}, "stop")
    yield {**base, "choices": [], "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
                                            "total_tokens": USAGE_IN + USAGE_OUT}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for name, data in events:
            head = f"event: {name}\n" if name else ""
            self.wfile.write(f"{head}data: {data}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True

    def do_GET(self):
        if self.path == "/__requests":
            with _lock:
                return self._json(200, list(_received))
        if self.path == "/__health":
            return self._json(200, {"ok": True})
        self._json(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with _lock:
            _received.append({"path": self.path, "body": body})
        if self.path == "/v1/messages":
            if not self.headers.get("x-api-key", "").startswith("sk-ant-"):
                return self._json(401, {"type": "error", "error": {"type": "authentication_error",
                                                                   "message": "invalid x-api-key"}})
            if body.get("stream"):
                return self._sse((n, json.dumps(d)) for n, d in anthropic_events(body))
            return self._json(200, anthropic_message(body))
        if self.path == "/v1/chat/completions":
            if not self.headers.get("Authorization", "").startswith("Bearer sk-"):
                return self._json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                                  "param": None, "code": "invalid_api_key"}})
            if body.get("stream"):
                events = [(None, json.dumps(c)) for c in openai_chunks(body)] + [(None, "[DONE]")]
                return self._sse(events)
            return self._json(200, openai_completion(body))
        self._json(404, {"error": "not found"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"fake-upstream listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
