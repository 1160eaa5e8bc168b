#!/usr/bin/env python3
"""A loopback fake of OpenAI's Chat Completions endpoint, for tests only.

Answers `POST /v1/chat/completions` with the example bodies from OpenAI's API reference
(https://platform.openai.com/docs/api-reference/chat/create): a `chat.completion` object
for JSON, and `chat.completion.chunk` SSE events ending in `data: [DONE]` for
`"stream": true`; with `stream_options.include_usage` every chunk carries `"usage": null`
and one last chunk has `"choices": []` and the usage counts, as OpenAI documents.

`POST /v1/embeddings` answers OpenAI's documented embeddings list
(https://platform.openai.com/docs/api-reference/embeddings/create): one vector per input,
`dimensions` long (1536 when not asked), as floats or, for `"encoding_format": "base64"`
(the Python SDK's default), as base64 of little-endian float32s.

Tools and formats, as a model would answer them: a request offering `tools` whose last
message is not a tool result gets one call of the first tool (arguments built from its
schema: strings "Paris", integers 18, numbers 18.5, booleans true), whole or streamed as
OpenAI streams calls (id, type and name first, then the arguments in pieces,
`finish_reason: "tool_calls"`); a request whose last message is a tool result gets
TOOL_RESULT_TEXT; `response_format: json_schema` gets an instance of the schema as its
content, and `json_object` gets `{"ok": true}`.

`GET /__requests` returns the JSON bodies received so far (tests check what the
gateway forwarded); `GET /__health` answers 200.

Usage: fake_openai.py [--port 0]   prints `fake-openai listening on http://127.0.0.1:PORT`
as its first stdout line. Binds 127.0.0.1 only.
"""

import argparse
import base64
import json
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The text and counts the tests expect the gateway to pass through unchanged.
JSON_TEXT = "Hello! How can I assist you today?"
JSON_USAGE = {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}
STREAM_PIECES = ["Hello", "!", " How", " can", " I", " help", "?"]
STREAM_TEXT = "".join(STREAM_PIECES)
STREAM_USAGE = {"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20}

TOOL_CALL_ID = "call_DdmO9pD3xa9XTPNJ32zg2hcA"
TOOL_RESULT_TEXT = "It is 18C and sunny in Paris."
TOOL_USAGE = {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99}

EMBED_DEFAULT_DIMENSIONS = 1536
EMBED_PROMPT_TOKENS_PER_INPUT = 5

_received = []
_lock = threading.Lock()


def completion(model):
    """OpenAI's documented non-streaming response object."""
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": JSON_TEXT,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            **JSON_USAGE,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
    }


def instance(schema):
    """A value matching a JSON schema, as a model answering it strictly would write."""
    if not isinstance(schema, dict):
        return None
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return instance(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {k: instance(v) for k, v in (schema.get("properties") or {}).items()}
    return {"string": "Paris", "integer": 18, "number": 18.5, "boolean": True, "array": []}.get(kind)


def wants_tool_call(body):
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    return bool(body.get("tools")) and body.get("tool_choice") != "none" and last.get("role") != "tool"


def called_tool(body):
    """The tool a call goes to: the forced one, else the first offered."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return choice["function"]["name"], next(
            t["function"] for t in body["tools"] if t["function"]["name"] == choice["function"]["name"]
        )
    first = body["tools"][0]["function"]
    return first["name"], first


def tool_arguments(function):
    return json.dumps(instance(function.get("parameters") or {"type": "object"}) or {})


def answer_text(body):
    """The content a non-tool answer carries for this request."""
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return TOOL_RESULT_TEXT
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return json.dumps(instance(fmt["json_schema"]["schema"]))
    if fmt.get("type") == "json_object":
        return json.dumps({"ok": True})
    return JSON_TEXT


def tool_completion(model, body):
    """OpenAI's documented function-calling answer: content null, one call."""
    name, function = called_tool(body)
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1699896916,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": TOOL_CALL_ID, "type": "function", "function": {"name": name, "arguments": tool_arguments(function)}}
                    ],
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {**TOOL_USAGE, "completion_tokens_details": {"reasoning_tokens": 0}},
    }


def tool_chunks(model, body, include_usage):
    """A streamed call as OpenAI's function-calling guide shows it."""
    name, function = called_tool(body)
    args = tool_arguments(function)
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    extra = {"usage": None} if include_usage else {}
    first = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"index": 0, "id": TOOL_CALL_ID, "type": "function", "function": {"name": name, "arguments": ""}}],
    }
    deltas = [first]
    step = max(1, len(args) // 3)
    for i in range(0, len(args), step):
        deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": args[i : i + step]}}]})
    for d in deltas:
        yield {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}], **extra}
    yield {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}], **extra}
    if include_usage:
        yield {**base, "choices": [], "usage": TOOL_USAGE}


def chunks(model, include_usage):
    """OpenAI's documented streaming chunks (role first, content deltas, finish, usage)."""
    base = {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": model,
        "system_fingerprint": "fp_44709d6fcb",
    }
    extra = {"usage": None} if include_usage else {}
    deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in STREAM_PIECES]
    for d in deltas:
        yield {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}], **extra}
    yield {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], **extra}
    if include_usage:
        yield {
            **base,
            "choices": [],
            "usage": {
                **STREAM_USAGE,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        }


def embeddings(body):
    """OpenAI's documented embeddings answer for `body`."""
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
    n = int(body.get("dimensions") or EMBED_DEFAULT_DIMENSIONS)
    data = []
    for i, _ in enumerate(inputs):
        vector = [round((i + 1) * 0.001 * (k % 7 - 3), 6) for k in range(n)]
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{n}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    tokens = EMBED_PROMPT_TOKENS_PER_INPUT * len(inputs)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet; errors still go to stderr
        pass

    def _send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/__requests":
            with _lock:
                self._send_json(200, list(_received))
        elif self.path == "/__health":
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path not in ("/v1/chat/completions", "/v1/embeddings"):
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send_json(400, {"error": {"message": "bad json", "type": "invalid_request_error"}})
            return
        with _lock:
            _received.append({"auth": self.headers.get("Authorization"), "body": body})
        if not (self.headers.get("Authorization") or "").startswith("Bearer sk-"):
            self._send_json(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}})
            return
        if self.path == "/v1/embeddings":
            self._send_json(200, embeddings(body))
            return
        model = body.get("model", "gpt-4o-mini")
        tool = wants_tool_call(body)
        if not body.get("stream"):
            if tool:
                self._send_json(200, tool_completion(model, body))
            else:
                answer = completion(model)
                answer["choices"][0]["message"]["content"] = answer_text(body)
                self._send_json(200, answer)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for c in tool_chunks(model, body, include_usage) if tool else chunks(model, include_usage):
            self.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    print(f"fake-openai listening on http://127.0.0.1:{srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
