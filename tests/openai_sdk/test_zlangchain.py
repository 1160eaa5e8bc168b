"""LangChain's ChatOpenAI (langchain-openai from PyPI) against llm-local's OpenAI face:
`bind_tools` (whole and streamed, then the tool's result sent back) and
`with_structured_output` by JSON schema and by function calling.

Run by run.sh after test_openai_sdk.py (whose usage check counts only its own requests),
with the same environment: GATEWAY_URL, GATEWAY_TOKEN, FAKE_URL.
"""

import json
import os
import urllib.request

from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

import fake_openai as fake

GATEWAY_URL = os.environ["GATEWAY_URL"]
TOKEN = os.environ["GATEWAY_TOKEN"]
FAKE_URL = os.environ["FAKE_URL"]


def upstream_requests():
    with urllib.request.urlopen(FAKE_URL + "/__requests", timeout=5) as r:
        return json.load(r)


def llm():
    # temperature != 0 keeps the response cache out of the way
    return ChatOpenAI(
        model="gpt-4o-mini", base_url=GATEWAY_URL + "/v1", api_key=TOKEN, temperature=0.7, max_retries=0, timeout=20
    )


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18C and sunny in {city}"


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    celsius: float


def test_bind_tools_calls_the_tool_and_reads_its_result():
    before = len(upstream_requests())
    model = llm().bind_tools([get_weather])
    question = HumanMessage("What is the weather in Paris?")
    ai = model.invoke([question])
    assert [(c["name"], c["args"], c["id"]) for c in ai.tool_calls] == [
        ("get_weather", {"city": "Paris"}, fake.TOOL_CALL_ID)
    ]
    result = get_weather.invoke(ai.tool_calls[0]["args"])
    final = model.invoke([question, ai, ToolMessage(result, tool_call_id=ai.tool_calls[0]["id"])])
    assert final.content == fake.TOOL_RESULT_TEXT
    assert final.tool_calls == []
    sent = upstream_requests()[before:]
    assert len(sent) == 2, sent
    assert sent[0]["body"]["tools"][0]["function"]["name"] == "get_weather"
    assert sent[1]["body"]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": fake.TOOL_CALL_ID,
        "content": "18C and sunny in Paris",
    }


def test_bind_tools_streams_a_call_that_assembles():
    chunks = list(llm().bind_tools([get_weather]).stream("What is the weather in Paris?"))
    whole = chunks[0]
    for c in chunks[1:]:
        whole = whole + c
    assert [(c["name"], c["args"]) for c in whole.tool_calls] == [("get_weather", {"city": "Paris"})]


def test_with_structured_output_by_json_schema():
    before = len(upstream_requests())
    got = llm().with_structured_output(Weather).invoke("Paris is at 18.5 degrees.")
    assert got == Weather(city="Paris", celsius=18.5)
    [sent] = upstream_requests()[before:]
    assert sent["body"]["response_format"]["type"] == "json_schema"


def test_with_structured_output_by_function_calling():
    before = len(upstream_requests())
    got = llm().with_structured_output(Weather, method="function_calling").invoke("Paris is at 18.5 degrees.")
    assert got == Weather(city="Paris", celsius=18.5)
    [sent] = upstream_requests()[before:]
    assert sent["body"]["tools"][0]["function"]["name"] == "Weather"
