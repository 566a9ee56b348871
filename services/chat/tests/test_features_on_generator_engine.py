"""The same guided, logprob-reporting requests on both engines give the same tokens and logprobs.

The default server runs the batched engine; this one runs one ONNX Runtime GenAI Generator per request. Both hand
the same per-request sampler one logits row per step, so guidance and logprobs must agree. A lone request is one
decode row on both, the same kernels on every CPU, so they agree exactly; several choices are several rows on the
batched engine, which only batch-invariant mode holds to a lone row's numbers (test_n_choices.py does that).
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from chat_testing import ChatServer

MODEL_ID = "smollm2-135m-instruct"
SCHEMA = {
    "type": "object",
    "properties": {"fruit": {"type": "string", "maxLength": 20}, "colour": {"type": "string"}},
    "required": ["fruit", "colour"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def generator_server(smollm_path):
    server = ChatServer(smollm_path, CHAT_ENGINE="generator").start()
    yield server
    server.stop()


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_guided_logprobs_agree_across_engines(client, generator_server: ChatServer, temperature: float) -> None:
    kwargs = dict(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Name a fruit and its colour as JSON."}],
        temperature=temperature,
        seed=9,
        max_tokens=40,
        logprobs=True,
        top_logprobs=3,
        response_format={"type": "json_schema", "json_schema": {"name": "fruit", "schema": SCHEMA}},
    )
    batched = client.chat.completions.create(**kwargs)
    single = generator_server.client().chat.completions.create(**kwargs)
    for a, b in zip(batched.choices, single.choices, strict=True):
        jsonschema.validate(json.loads(a.message.content), SCHEMA)
        assert a.message.content == b.message.content
        assert [e.token for e in a.logprobs.content] == [e.token for e in b.logprobs.content]
        assert [e.logprob for e in a.logprobs.content] == [e.logprob for e in b.logprobs.content]
        assert [[t.logprob for t in e.top_logprobs] for e in a.logprobs.content] == [
            [t.logprob for t in e.top_logprobs] for e in b.logprobs.content
        ]
    # Token counts agree; only the batched engine has a prefix cache (its cached_tokens may be above 0).
    assert batched.usage.model_dump(exclude={"prompt_tokens_details"}) == single.usage.model_dump(
        exclude={"prompt_tokens_details"}
    )
    assert single.usage.prompt_tokens_details.cached_tokens == 0


def test_forced_tool_call_on_the_generator_engine(generator_server: ChatServer) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": SCHEMA}}]
    response = generator_server.client().chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Look up the banana."}],
        tools=tools,
        tool_choice="required",
        temperature=0,
        max_tokens=40,
    )
    [call] = response.choices[0].message.tool_calls
    jsonschema.validate(json.loads(call.function.arguments), SCHEMA)
