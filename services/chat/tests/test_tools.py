"""Tool calling on the real SmolLM2 model through the OpenAI SDK: forced calls, streaming deltas, history, refusals."""

from __future__ import annotations

import json

import httpx
import jsonschema
import openai
import pytest

MODEL_ID = "smollm2-135m-instruct"
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER_PARAMETERS,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Local time in a time zone",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
        },
    },
]
ASK = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


@pytest.mark.parametrize("tool_choice", ["required", NAMED])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_forced_call_has_valid_arguments(client: openai.OpenAI, tool_choice, temperature: float) -> None:
    response = client.chat.completions.create(
        model=MODEL_ID,
        messages=ASK,
        tools=TOOLS,
        tool_choice=tool_choice,
        temperature=temperature,
        seed=3,
        max_tokens=80,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    if tool_choice == NAMED:
        assert call.function.name == "get_weather"
    schema = next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == call.function.name)
    jsonschema.validate(json.loads(call.function.arguments), schema)


def test_streamed_call_follows_openais_delta_format(client: openai.OpenAI) -> None:
    kwargs = dict(model=MODEL_ID, messages=ASK, tools=TOOLS, tool_choice=NAMED, temperature=0, max_tokens=80)
    full = client.chat.completions.create(**kwargs).choices[0].message.tool_calls[0]
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    first, rest = deltas[0], deltas[1:]
    assert first.index == 0 and first.id.startswith("call_") and first.type == "function"
    assert first.function.name == "get_weather" and first.function.arguments == ""
    assert len(rest) >= 2, "arguments arrive in fragments as they are generated"
    assert all(d.index == 0 and d.id is None and d.function.name is None for d in rest)
    assert "".join(d.function.arguments for d in rest) == full.function.arguments
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_history_with_a_call_and_its_result_is_accepted(client: openai.OpenAI) -> None:
    messages = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21, "sky": "sunny"}'},
    ]
    response = client.chat.completions.create(
        model=MODEL_ID, messages=messages, tools=TOOLS, temperature=0, max_tokens=40
    )
    assert response.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert response.usage.prompt_tokens > 0


def _rendered(chat_server, body: dict) -> str:
    tokens = httpx.post(chat_server.base_url + "/tokenize", json=body, timeout=30).json()["tokens"]
    return httpx.post(chat_server.base_url + "/detokenize", json={"tokens": tokens}, timeout=30).json()["prompt"]


def test_tools_and_history_reach_the_prompt(chat_server) -> None:
    """SmolLM2's template ignores tools: the server writes them, past calls and results into the prompt itself."""
    history = [
        {"role": "system", "content": "Be brief."},
        *ASK,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "21 C"},
    ]
    prompt = _rendered(chat_server, {"messages": history, "tools": TOOLS})
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\n# Tools")
    assert '"name": "get_weather"' in prompt and '"name": "get_time"' in prompt
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in prompt
    assert "<|im_start|>user\n<tool_response>\n21 C\n</tool_response><|im_end|>" in prompt
    assert "# Tools" not in _rendered(chat_server, {"messages": ASK, "tools": TOOLS, "tool_choice": "none"})


def test_tool_choice_none_answers_in_text(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL_ID, messages=ASK, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=20
    )
    assert response.choices[0].message.tool_calls is None and response.choices[0].message.content


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": None, "tool_choice": "required"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
        ({"tools": [TOOLS[0], TOOLS[0]]}, "tools[1].function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}]},
            "tools[0].function.parameters",
        ),
        ({"messages": [*ASK, {"role": "tool", "content": "21 C"}]}, "messages[1].tool_call_id"),
    ],
)
def test_tool_refusals_name_the_field(chat_server, extra: dict, param: str) -> None:
    body = {"model": MODEL_ID, "messages": ASK, "tools": TOOLS, "max_tokens": 5, **extra}
    body = {k: v for k, v in body.items() if v is not None}
    response = httpx.post(chat_server.base_url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
