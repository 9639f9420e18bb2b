"""The sandbox LLM through both official clients, and ``llm.complete`` against it.

The sandbox answers by fixed rules (morket/providers/sandboxes/llm.py), so the expected answers
below are worked out by hand from those rules, not read back from the sandbox.
"""

from __future__ import annotations

import json
import math
import time

import anthropic
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morket.ai import llm

KEY = "sandbox-llm-key-7f3a"
SCHEMA = {
    "type": "object",
    "properties": {
        "industry": {"type": "string", "enum": ["SaaS", "Retail", "Fintech"]},
        "employees": {"type": "integer"},
        "revenue": {"type": "number"},
        "site": {"type": "string", "format": "uri"},
        "b2b": {"type": "boolean"},
        "contact_email": {"type": "string"},
        "summary": {"type": "string"},
    },
    "required": ["industry", "employees", "revenue", "site", "b2b", "contact_email", "summary"],
    "additionalProperties": False,
}
DATA = "Acme Corp sells to retail chains; 1200 staff.\nYes, B2B. https://acme.example/about, ceo@acme.example"
PROMPT = f"Classify the company.\n<data>{DATA}</data>"
EXPECTED = {
    "industry": "Retail",
    "employees": 1200,
    "revenue": 1200,
    "site": "https://acme.example/about",
    "b2b": True,
    "contact_email": "ceo@acme.example",
    "summary": "Acme Corp sells to retail chains; 1200 staff.",
}


@pytest.fixture
def llm_sandbox(sandbox_server):
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


def _endpoint(server, kind: str, key: str = KEY, model: str = "sandbox-small") -> llm.Endpoint:
    base = server.url("openai") + "/v1" if kind == "openai" else server.url("anthropic")
    return llm.Endpoint(kind=kind, base_url=base, api_key=key, model=model, platform=False)


def _openai(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url("openai") + "/v1", api_key=KEY, max_retries=0)


def _anthropic(server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url("anthropic"), api_key=KEY, max_retries=0)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_schema_answer_follows_the_rules_and_counts_tokens(llm_sandbox, kind):
    system = "You classify companies."
    answer = llm.complete(_endpoint(llm_sandbox, kind), system=system, prompt=PROMPT, schema=SCHEMA)
    assert answer.value == EXPECTED
    assert json.loads(answer.text) == EXPECTED
    assert answer.input_tokens == math.ceil(len(system + PROMPT) / 4)
    assert answer.output_tokens == math.ceil(len(json.dumps(EXPECTED)) / 4)
    assert answer.model == "sandbox-small"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_enum_without_a_match_is_picked_by_the_prompt_hash(llm_sandbox, kind):
    import hashlib

    options = ["alpha", "beta", "gamma", "delta"]
    prompt = "<data>nothing that names an option</data>"
    want = options[int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % len(options)]
    answer = llm.complete(_endpoint(llm_sandbox, kind), system="", prompt=prompt, schema={"enum": options})
    # A schema that is not an object goes out wrapped and comes back unwrapped.
    assert answer.value == want and json.loads(answer.text) == {"value": want}
    # Whole words only: "betamax" does not name "beta"; "Gamma." does name "gamma".
    answer = llm.complete(_endpoint(llm_sandbox, kind), system="", prompt="<data>betamax Gamma.</data>",
                          schema={"enum": options})  # fmt: skip
    assert answer.value == "gamma"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_plain_text_quotes_the_first_line(llm_sandbox, kind):
    answer = llm.complete(_endpoint(llm_sandbox, kind), system="", prompt=PROMPT)
    assert answer.value == answer.text == 'Sandbox answer about "Acme Corp sells to retail chains; 1200 staff.".'


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_junk_marker_answers_json_that_does_not_fit(llm_sandbox, kind):
    answer = llm.complete(_endpoint(llm_sandbox, kind), system="", prompt="[[junk]] " + PROMPT, schema=SCHEMA)
    assert answer.value == {
        "industry": "not-an-option", "employees": "not a number", "revenue": "not a number", "site": 12345,
        "b2b": "maybe", "contact_email": 12345, "summary": 12345,
    }  # fmt: skip
    with pytest.raises(llm.LlmError) as caught:
        llm.complete(_endpoint(llm_sandbox, kind), system="", prompt="[[not-json]] hi", schema=SCHEMA)
    assert not caught.value.retryable and "not valid JSON" in caught.value.message


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_rate_limit_maps_to_retryable_with_retry_after(llm_sandbox, kind):
    llm_sandbox.configure(kind, rate=0.2, burst=1)
    endpoint = _endpoint(llm_sandbox, kind)
    llm.complete(endpoint, system="", prompt="first")
    with pytest.raises(llm.LlmError) as caught:
        llm.complete(endpoint, system="", prompt="second")
    assert caught.value.retryable and caught.value.retry_after == 5
    assert [e["status"] for e in llm_sandbox.log(kind)] == [200, 429]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [500, 503, 529])
def test_server_errors_are_retryable(llm_sandbox, kind, status):
    llm_sandbox.configure(kind, error_rate=1, fail_status=status)
    with pytest.raises(llm.LlmError) as caught:
        llm.complete(_endpoint(llm_sandbox, kind), system="", prompt="hello")
    assert caught.value.retryable and caught.value.retry_after is None
    assert str(status) in caught.value.message


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_client_errors_are_not_retryable_and_never_show_the_key(llm_sandbox, kind):
    bad = _endpoint(llm_sandbox, kind, key="wrong-key-0123456789")
    with pytest.raises(llm.LlmError) as caught:
        llm.complete(bad, system="", prompt="hello")
    assert not caught.value.retryable and "401" in caught.value.message
    assert "wrong-key" not in caught.value.message and "wrong-key" not in repr(bad)
    with pytest.raises(llm.LlmError) as caught:
        llm.complete(_endpoint(llm_sandbox, kind), system="", prompt="[[fail:400]] hello")
    assert not caught.value.retryable and "asked for by the prompt" in caught.value.message


def test_openai_quota_is_not_retryable(llm_sandbox):
    llm_sandbox.configure("openai", quota=0)
    with pytest.raises(llm.LlmError) as caught:
        llm.complete(_endpoint(llm_sandbox, "openai"), system="", prompt="hello")
    assert not caught.value.retryable and "quota" in caught.value.message


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_slow_endpoint_times_out_as_retryable(llm_sandbox, kind):
    llm_sandbox.configure(kind, latency_ms=1500)
    started = time.monotonic()
    with pytest.raises(llm.LlmError) as caught:
        llm.complete(_endpoint(llm_sandbox, kind), system="", prompt="hello", timeout=0.3)
    assert caught.value.retryable and "in time" in caught.value.message
    assert time.monotonic() - started < 1.4


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_long_answers_are_cut_at_max_tokens(llm_sandbox, kind):
    answer = llm.complete(_endpoint(llm_sandbox, kind), system="", prompt=PROMPT, max_tokens=3)
    assert answer.text == "Sandbox answ" and answer.output_tokens == 3


def test_openai_client_streams_text_and_usage(llm_sandbox):
    stream = _openai(llm_sandbox).chat.completions.create(
        model="sandbox-small", messages=[{"role": "user", "content": PROMPT}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == 'Sandbox answer about "Acme Corp sells to retail chains; 1200 staff.".'
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert chunks[-1].usage.prompt_tokens == math.ceil(len(PROMPT) / 4)
    assert chunks[-1].usage.completion_tokens == math.ceil(len(text) / 4)


def test_openai_client_structured_output_and_tool_calls(llm_sandbox):
    client = _openai(llm_sandbox)
    result = client.chat.completions.create(
        model="sandbox-large", messages=[{"role": "user", "content": PROMPT}],
        response_format={"type": "json_schema", "json_schema": {"name": "company", "schema": SCHEMA, "strict": True}},
    )  # fmt: skip
    assert json.loads(result.choices[0].message.content) == EXPECTED and result.model == "sandbox-large"

    def tool(name: str, argument: str) -> dict:
        parameters = {"type": "object", "properties": {argument: {"type": "string"}}}
        return {"type": "function", "function": {"name": name, "parameters": parameters}}

    tools = [tool("web_search", "query"), tool("fetch_page", "url")]
    messages = [{"role": "user", "content": "Use fetch_page on https://acme.example/team please"}]
    first = client.chat.completions.create(model="sandbox-small", messages=messages, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "fetch_page",
        {"url": "https://acme.example/team"},
    )
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Team page\nJane Doe, CEO"},
    ]
    second = client.chat.completions.create(model="sandbox-small", messages=messages, tools=tools)
    assert second.choices[0].message.content == 'Sandbox answer about "Team page".'
    # Streamed tool calls arrive in pieces and add up to the same call.
    stream = client.chat.completions.create(model="sandbox-small", messages=messages[:1], tools=tools, stream=True)
    arguments = "".join(
        (c.choices[0].delta.tool_calls or [None])[0].function.arguments or ""
        for c in stream if c.choices and c.choices[0].delta.tool_calls
    )  # fmt: skip
    assert json.loads(arguments) == {"url": "https://acme.example/team"}


RESULT = "Acme: 7 people"


def test_anthropic_client_tool_use_and_streaming(llm_sandbox):
    client = _anthropic(llm_sandbox)
    tools = [
        {
            "name": "lookup",
            "input_schema": {
                "type": "object",
                "properties": {"domain": {"type": "string"}, "count": {"type": "integer"}},
            },
        }
    ]
    message = client.messages.create(
        model="sandbox-small", max_tokens=200, tools=tools,
        messages=[{"role": "user", "content": "lookup acme.example, 7 people"}],
    )  # fmt: skip
    [block] = message.content
    assert (message.stop_reason, block.type, block.name) == ("tool_use", "tool_use", "lookup")
    assert block.input == {"domain": "lookup acme.example, 7 people", "count": 7}
    follow = client.messages.create(
        model="sandbox-small", max_tokens=200, tools=tools,
        messages=[
            {"role": "user", "content": "lookup acme.example, 7 people"},
            {"role": "assistant", "content": [block.model_dump(include={"type", "id", "name", "input"})]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": RESULT}]},
        ],
    )  # fmt: skip
    assert follow.content[0].text == 'Sandbox answer about "Acme: 7 people".' and follow.stop_reason == "end_turn"
    with client.messages.stream(
        model="sandbox-small", max_tokens=200, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == final.content[0].text
    assert final.usage.output_tokens == math.ceil(len(final.content[0].text) / 4)
    with client.messages.stream(model="sandbox-small", max_tokens=200, tools=tools,
                                messages=[{"role": "user", "content": "lookup 3"}]) as stream:  # fmt: skip
        final = stream.get_final_message()
    assert final.content[0].input == {"domain": "lookup 3", "count": 3}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prompt=st.text(max_size=300),
    system=st.text(max_size=40),
    kind=st.sampled_from(["openai", "anthropic"]),
    schema=st.sampled_from([None, SCHEMA, {"enum": ["x", "y"]}, {"type": "array", "items": {"type": "number"}}]),
)
def test_any_prompt_gives_an_answer_or_an_llm_error(llm_sandbox, prompt, system, kind, schema):
    try:
        answer = llm.complete(_endpoint(llm_sandbox, kind), system=system, prompt=prompt, schema=schema, timeout=10)
    except llm.LlmError as exc:
        assert isinstance(exc.message, str) and exc.message
        return
    assert isinstance(answer.text, str) and answer.input_tokens >= 0 and answer.output_tokens >= 0
    # The sandbox never failed on its own: no 500 from a rule blowing up.
    assert all(e["status"] != 500 for e in llm_sandbox.log(kind))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_numbers_follow_the_data_exactly(llm_sandbox, kind):
    schema = {"type": "object", "properties": {"n": {"type": "number"}, "i": {"type": "integer"}}}
    endpoint = _endpoint(llm_sandbox, kind)
    assert llm.complete(endpoint, system="", prompt="<data>ARR 12.5m, 40 staff</data>", schema=schema).value == {
        "n": 12.5, "i": 12,
    }  # fmt: skip
    huge = "9" * 400
    answer = llm.complete(endpoint, system="", prompt=f"<data>{huge}.5</data>", schema=schema)
    assert answer.value == {"n": int(huge), "i": int(huge)}
    assert llm.complete(endpoint, system="", prompt="<data>none</data>", schema=schema).value == {"n": 0, "i": 0}
