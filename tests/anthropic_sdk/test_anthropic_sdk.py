"""The official Anthropic Python SDK against llm-local's Anthropic Messages face.

Run by tests/anthropic_sdk/run.sh, which starts the fake upstream (fake_upstream.py,
Anthropic's and OpenAI's wire formats) and llm-local pointed at it, saves both keys for
the user, and exports:

  GATEWAY_URL   http://127.0.0.1:PORT of llm-local
  GATEWAY_TOKEN the user's gateway token (the SDK sends it as x-api-key)
  FAKE_URL      http://127.0.0.1:PORT of the fake upstream
"""

import json
import os
import urllib.request

import anthropic
import pytest

import fake_upstream as fake

GATEWAY_URL = os.environ["GATEWAY_URL"]
TOKEN = os.environ["GATEWAY_TOKEN"]
FAKE_URL = os.environ["FAKE_URL"]

CLAUDE = "anthropic/claude-3-5-sonnet-20241022"
GPT = "openai/gpt-4o"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def client(api_key=TOKEN):
    return anthropic.Anthropic(base_url=GATEWAY_URL, api_key=api_key, max_retries=0, timeout=20)


def upstream_requests():
    with urllib.request.urlopen(FAKE_URL + "/__requests", timeout=5) as r:
        return json.load(r)


def last_upstream(path):
    return [r for r in upstream_requests() if r["path"] == path][-1]["body"]


def test_messages_create_with_an_anthropic_model():
    resp = client().messages.create(
        model=CLAUDE, max_tokens=128, system="Be brief.", messages=[{"role": "user", "content": "Hello"}],
    )
    assert resp.type == "message"
    assert resp.role == "assistant"
    assert resp.model == CLAUDE
    assert resp.id.startswith("msg_")
    assert resp.content[0].type == "text"
    assert resp.content[0].text == fake.TEXT
    assert resp.stop_reason == "end_turn"
    assert resp.usage.input_tokens == fake.USAGE_IN
    assert resp.usage.output_tokens == fake.USAGE_OUT
    sent = last_upstream("/v1/messages")
    assert sent["model"] == "claude-3-5-sonnet-20241022"
    assert sent["max_tokens"] == 128
    assert sent["messages"][0]["role"] == "user"


def test_messages_stream_text():
    with client().messages.stream(model=GPT, max_tokens=64, messages=[{"role": "user", "content": "Hi"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "".join(fake.STREAM_PIECES)
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == fake.USAGE_OUT
    assert final.usage.input_tokens == fake.USAGE_IN


# A Claude model behind this face: its tools go to Anthropic as tool_use blocks.
CLAUDE_TOOLS = CLAUDE


@pytest.mark.parametrize("model", [CLAUDE_TOOLS, GPT])
def test_messages_stream_a_tool_use(model):
    with client().messages.stream(model=model, max_tokens=64, tools=[WEATHER_TOOL], messages=ASK) as s:
        events = [e.type for e in s]
        final = s.get_final_message()
    assert "input_json" in events
    assert final.stop_reason == "tool_use"
    (block,) = [b for b in final.content if b.type == "tool_use"]
    assert block.name == "get_weather"
    assert block.input == {"city": "Paris"}


def test_tool_use_round_trip_with_an_openai_model():
    c = client()
    first = c.messages.create(model=GPT, max_tokens=64, tools=[WEATHER_TOOL], messages=ASK)
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert call.id == fake.CALL_ID
    assert call.input == {"city": "Paris"}
    history = ASK + [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C, sunny"}]},
    ]
    second = c.messages.create(model=GPT, max_tokens=64, tools=[WEATHER_TOOL], messages=history)
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == fake.AFTER_TOOL_TEXT
    sent = last_upstream("/v1/chat/completions")
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "tool"]
    assert sent["messages"][1]["tool_calls"][0]["id"] == fake.CALL_ID
    assert sent["messages"][2]["tool_call_id"] == fake.CALL_ID


def test_count_tokens():
    before = len(upstream_requests())
    r = client().messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "a" * 400}])
    assert r.input_tokens == 101
    assert len(upstream_requests()) == before, "count_tokens calls no provider"


def test_models_list():
    ids = [m.id for m in client().models.list()]
    assert CLAUDE in ids
    assert GPT in ids


def test_a_bad_key_is_an_authentication_error():
    with pytest.raises(anthropic.AuthenticationError):
        client(api_key="llmk_not-a-real-token").messages.create(model=CLAUDE, max_tokens=8, messages=ASK)


def test_a_bad_field_is_a_bad_request_naming_it():
    with pytest.raises(anthropic.BadRequestError) as e:
        client().messages.create(
            model=CLAUDE, max_tokens=8,
            messages=[{"role": "user", "content": [
                {"type": "image", "source": {"type": "url", "url": "http://example.com/cat.png"}}]}],
        )
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert e.value.body["error"]["message"].startswith("messages.0.content.0.source")
