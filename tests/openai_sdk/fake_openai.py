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
        if not body.get("stream"):
            self._send_json(200, completion(model))
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for c in chunks(model, include_usage):
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
