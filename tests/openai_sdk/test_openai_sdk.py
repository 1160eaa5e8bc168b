"""The official OpenAI Python SDK against llm-local's OpenAI-compatible face.

Run by tests/openai_sdk/run.sh, which starts the fake upstream (fake_openai.py) and
llm-local pointed at it, saves an OpenAI key for the user, and exports:

  GATEWAY_URL   http://127.0.0.1:PORT of llm-local
  GATEWAY_TOKEN bearer token of USER_ID
  USER_ID       the user whose key was saved
  FAKE_URL      http://127.0.0.1:PORT of the fake upstream
  DATA_DIR      llm-local's --data-dir (gateway.sqlite3 lives there)

The SQLite check runs last (tests run in file order) and covers every request made above.
"""

import json
import os
import sqlite3
import time
import urllib.request

import openai
import pytest

import fake_openai as fake

GATEWAY_URL = os.environ["GATEWAY_URL"]
TOKEN = os.environ["GATEWAY_TOKEN"]
USER_ID = os.environ["USER_ID"]
FAKE_URL = os.environ["FAKE_URL"]
DATA_DIR = os.environ["DATA_DIR"]

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
]

# request ids (x-request-id) of every request that reached the generate engine
SUCCESSFUL_REQUEST_IDS = []
# those of them that were embeddings
EMBEDDING_REQUEST_IDS = []


def client(api_key=TOKEN):
    return openai.OpenAI(base_url=GATEWAY_URL + "/v1", api_key=api_key, max_retries=0, timeout=20)


def upstream_requests():
    with urllib.request.urlopen(FAKE_URL + "/__requests", timeout=5) as r:
        return json.load(r)


def test_non_streaming_returns_upstream_text_and_usage():
    before = len(upstream_requests())
    c = client()
    # temperature != 0 keeps the response cache out of the way
    resp = c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.7)
    assert resp._request_id, "gateway must send x-request-id"
    SUCCESSFUL_REQUEST_IDS.append(resp._request_id)

    assert resp.object == "chat.completion"
    assert len(resp.choices) == 1
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == fake.JSON_TEXT
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == fake.JSON_USAGE["prompt_tokens"]
    assert resp.usage.completion_tokens == fake.JSON_USAGE["completion_tokens"]
    assert resp.usage.total_tokens == fake.JSON_USAGE["total_tokens"]

    # the upstream saw one request for OpenAI's model id with the saved key and our messages
    got = upstream_requests()[before:]
    assert len(got) == 1, got
    assert got[0]["body"]["model"] == "gpt-4o-mini"
    assert got[0]["auth"].startswith("Bearer sk-proj-")
    assert [m["content"] for m in got[0]["body"]["messages"]] == [m["content"] for m in MESSAGES]


def test_provider_prefixed_model_id():
    resp = client().chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES, temperature=0.7)
    SUCCESSFUL_REQUEST_IDS.append(resp._request_id)
    assert resp.choices[0].message.content == fake.JSON_TEXT
    assert resp.usage.total_tokens == fake.JSON_USAGE["total_tokens"]


def test_sampling_parameters_reach_the_upstream():
    before = len(upstream_requests())
    resp = client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0.7, top_p=0.5, stop=["END"], seed=7,
    )
    SUCCESSFUL_REQUEST_IDS.append(resp._request_id)
    assert resp.choices[0].message.content == fake.JSON_TEXT
    got = upstream_requests()[before:]
    assert len(got) == 1, got
    body = got[0]["body"]
    assert (body["top_p"], body["stop"], body["seed"]) == (0.5, ["END"], 7)


def test_streaming_deltas_join_and_final_usage_chunk():
    stream = client().chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        temperature=0.7,
        stream=True,
        stream_options={"include_usage": True},
    )
    rid = stream.response.headers.get("x-request-id")
    assert rid, "gateway must send x-request-id on a stream"
    SUCCESSFUL_REQUEST_IDS.append(rid)
    assert stream.response.headers.get("content-type", "").startswith("text/event-stream")

    chunks = list(stream)
    assert chunks, "no chunks"
    for ch in chunks:
        assert ch.object == "chat.completion.chunk"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == fake.STREAM_TEXT
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["stop"]

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == fake.STREAM_USAGE["prompt_tokens"]
    assert last.usage.completion_tokens == fake.STREAM_USAGE["completion_tokens"]
    assert last.usage.total_tokens == fake.STREAM_USAGE["total_tokens"]
    # only the last chunk carries usage
    assert all(ch.usage is None for ch in chunks[:-1])


def test_streaming_without_include_usage_has_a_choice_in_every_chunk():
    # The usual SDK loop reads choices[0] of every chunk: without include_usage there must
    # be no usage-only chunk with empty choices; the usage rides on the final chunk.
    stream = client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0.7, stream=True,
    )
    SUCCESSFUL_REQUEST_IDS.append(stream.response.headers.get("x-request-id"))
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert text == fake.STREAM_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == fake.STREAM_USAGE["total_tokens"]


def test_models_list_contains_openai_gpt_4o_mini():
    ids = [m.id for m in client().models.list()]
    assert "openai/gpt-4o-mini" in ids, ids[:20]


def test_wrong_token_is_authentication_error():
    before = len(upstream_requests())
    with pytest.raises(openai.AuthenticationError) as ei:
        client(api_key="not-a-valid-token").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert ei.value.status_code == 401
    assert len(upstream_requests()) == before, "upstream must not be called"


def test_unknown_model_is_bad_request():
    before = len(upstream_requests())
    with pytest.raises(openai.BadRequestError) as ei:
        client().chat.completions.create(model="no-such-model-xyz", messages=MESSAGES)
    assert ei.value.status_code == 400
    body = ei.value.body
    assert isinstance(body, dict) and "model" in json.dumps(body), body
    assert len(upstream_requests()) == before, "upstream must not be called"


def test_embeddings_create_returns_one_vector_per_input():
    before = len(upstream_requests())
    resp = client().embeddings.create(model="text-embedding-3-small", input=["failed logins", "root sign-in"])
    assert resp._request_id, "gateway must send x-request-id"
    SUCCESSFUL_REQUEST_IDS.append(resp._request_id)
    EMBEDDING_REQUEST_IDS.append(resp._request_id)
    assert resp.object == "list"
    assert [d.index for d in resp.data] == [0, 1]
    # The SDK asked for base64 and decoded it: floats of the model's full length.
    assert all(len(d.embedding) == fake.EMBED_DEFAULT_DIMENSIONS for d in resp.data)
    assert all(isinstance(x, float) for x in resp.data[1].embedding[:4])
    assert resp.usage.prompt_tokens == 2 * fake.EMBED_PROMPT_TOKENS_PER_INPUT
    assert resp.usage.total_tokens == resp.usage.prompt_tokens
    sent = upstream_requests()[before:]
    assert len(sent) == 1, sent
    assert sent[0]["body"]["model"] == "text-embedding-3-small"
    assert sent[0]["body"]["input"] == ["failed logins", "root sign-in"]


def test_embeddings_with_dimensions_and_floats():
    resp = client().embeddings.create(
        model="openai/text-embedding-3-large", input="one string", dimensions=256, encoding_format="float"
    )
    SUCCESSFUL_REQUEST_IDS.append(resp._request_id)
    EMBEDDING_REQUEST_IDS.append(resp._request_id)
    assert len(resp.data) == 1
    assert len(resp.data[0].embedding) == 256


def test_a_chat_model_is_not_an_embedding_model():
    before = len(upstream_requests())
    with pytest.raises(openai.BadRequestError) as ei:
        client().embeddings.create(model="gpt-4o-mini", input=["x"])
    assert ei.value.status_code == 400
    assert len(upstream_requests()) == before, "upstream must not be called"


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
# A 1x1 PNG, as a data URL.
PNG_DATA_URL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def test_tools_answer_a_call_with_json_arguments():
    before = len(upstream_requests())
    resp = client().chat.completions.create(
        model="gpt-4o-mini", messages=WEATHER_QUESTION, tools=[WEATHER_TOOL], tool_choice="auto", temperature=0.7,
    )
    SUCCESSFUL_REQUEST_IDS.append(resp._request_id)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == (fake.TOOL_CALL_ID, "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert resp.usage.total_tokens == fake.TOOL_USAGE["total_tokens"]
    [sent] = upstream_requests()[before:]
    assert sent["body"]["tools"] == [WEATHER_TOOL]
    assert sent["body"]["tool_choice"] == "auto"


def test_a_tool_result_goes_back_and_the_model_answers():
    before = len(upstream_requests())
    history = WEATHER_QUESTION + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
    ]
    resp = client().chat.completions.create(
        model="gpt-4o-mini", messages=history, tools=[WEATHER_TOOL], temperature=0.7,
    )
    SUCCESSFUL_REQUEST_IDS.append(resp._request_id)
    assert resp.choices[0].message.content == fake.TOOL_RESULT_TEXT
    assert resp.choices[0].finish_reason == "stop"
    [sent] = upstream_requests()[before:]
    messages = sent["body"]["messages"]
    assert messages[1]["tool_calls"] == history[1]["tool_calls"]
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}


def test_streamed_tool_call_deltas_assemble_in_the_client():
    stream = client().chat.completions.create(
        model="gpt-4o-mini",
        messages=WEATHER_QUESTION,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0.7,
        stream=True,
        stream_options={"include_usage": True},
    )
    SUCCESSFUL_REQUEST_IDS.append(stream.response.headers.get("x-request-id"))
    chunks = list(stream)
    calls = {}
    for ch in chunks:
        for d in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            c = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
            c["id"] = d.id or c["id"]
            if d.function and d.function.name:
                c["name"] = d.function.name
            c["arguments"] += (d.function.arguments or "") if d.function else ""
    assert list(calls) == [0]
    assert calls[0]["id"] == fake.TOOL_CALL_ID
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    assert chunks[-1].usage.total_tokens == fake.TOOL_USAGE["total_tokens"]


def test_response_format_json_schema_reaches_the_upstream_and_parses():
    before = len(upstream_requests())
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
        "required": ["city", "celsius"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": schema, "strict": True}}
    resp = client().chat.completions.create(
        model="gpt-4o-mini", messages=WEATHER_QUESTION, response_format=fmt, temperature=0.7,
    )
    SUCCESSFUL_REQUEST_IDS.append(resp._request_id)
    assert json.loads(resp.choices[0].message.content) == {"city": "Paris", "celsius": 18.5}
    [sent] = upstream_requests()[before:]
    assert sent["body"]["response_format"] == fmt


def test_an_image_part_reaches_the_upstream_unchanged():
    before = len(upstream_requests())
    content = [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": PNG_DATA_URL, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/cat.jpg"}},
    ]
    resp = client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": content}], temperature=0.7,
    )
    SUCCESSFUL_REQUEST_IDS.append(resp._request_id)
    [sent] = upstream_requests()[before:]
    assert sent["body"]["messages"][0]["content"] == content


def test_an_image_to_a_model_without_vision_is_refused_or_dropped_when_asked():
    before = len(upstream_requests())
    content = [{"type": "text", "text": "What is in this image?"}, {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]
    with pytest.raises(openai.BadRequestError) as ei:
        client().chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": content}])
    assert ei.value.status_code == 400
    error = ei.value.body
    assert error["code"] == "unsupported_parameter", error
    assert "image_url" in error["message"] and "openai" in error["message"], error
    assert len(upstream_requests()) == before, "upstream must not be called"
    raw = client().chat.completions.with_raw_response.create(
        model="gpt-4",
        messages=[{"role": "user", "content": content}],
        temperature=0.7,
        extra_headers={"x-gateway-drop-params": "true"},
    )
    SUCCESSFUL_REQUEST_IDS.append(raw.headers.get("x-request-id"))
    assert raw.headers.get("x-gateway-dropped-params") == "image_url"
    [sent] = upstream_requests()[before:]
    assert sent["body"]["messages"][0]["content"] == "What is in this image?"


def test_a_field_openai_does_not_define_is_still_refused():
    with pytest.raises(openai.BadRequestError) as ei:
        client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, extra_body={"tool_choise": "auto"})
    assert "tool_choise" in json.dumps(ei.value.body)


def _usage_rows():
    path = os.path.join(DATA_DIR, "gateway.sqlite3")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return [(u, json.loads(b)) for u, b in con.execute("SELECT user_id, body FROM usage")]
    finally:
        con.close()


def test_zz_each_request_left_exactly_one_usage_entry():
    """Runs last: every successful request above left exactly one usage row, request ids
    are unique across the table, and nothing else was recorded for the user."""
    assert len(SUCCESSFUL_REQUEST_IDS) == 13, SUCCESSFUL_REQUEST_IDS
    want = set(SUCCESSFUL_REQUEST_IDS)
    assert len(want) == len(SUCCESSFUL_REQUEST_IDS), "gateway reused a request id"
    deadline = time.monotonic() + 10
    while True:
        rows = _usage_rows()
        have = {b.get("request_id") for _, b in rows}
        if want <= have or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    ids = [b.get("request_id") for _, b in rows]
    assert len(ids) == len(set(ids)), f"duplicate request_id in usage: {ids}"
    for rid in SUCCESSFUL_REQUEST_IDS:
        assert ids.count(rid) == 1, f"{rid}: {ids.count(rid)} usage entries; table has {ids}"
    mine = [b for u, b in rows if u == USER_ID]
    assert {b["request_id"] for b in mine} == want, f"unexpected entries: {mine}"
    for b in mine:
        assert b["status"] == "success", b
        assert b["provider"] == "openai", b
        assert b["cost_usd"] is not None, b
        if b["request_id"] in EMBEDDING_REQUEST_IDS:
            assert b["operation_type"] == "embedding", b
            assert b["output_tokens"] == 0, b
            continue
        assert b["total_tokens"] in (
            fake.JSON_USAGE["total_tokens"],
            fake.STREAM_USAGE["total_tokens"],
            fake.TOOL_USAGE["total_tokens"],
        ), b
        assert b["cost_usd"] is not None, b
