"""Tool calls the model chooses by itself (`tool_choice: auto`) on the real Qwen2.5-Coder-0.5B, through the OpenAI SDK:
its chat template lays out the tools, the model calls get_weather for Paris (in whichever format it writes the call),
and once given the result it answers in text; in chat completions, /v1/responses and /v1/messages, streamed and not,
greedy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from chat_testing import MODELS_DIR, ChatServer

pytestmark = pytest.mark.model  # starts a chat service of its own on Qwen

QWEN_ID = "qwen2.5-coder-0.5b-instruct"
QWEN = MODELS_DIR / QWEN_ID
QUESTION = "What is the weather like in Paris today?"
PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
    "required": ["city"],
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": PARAMETERS},
    }
]
RESPONSES_TOOLS = [{"type": "function", "name": "get_weather", "description": "Current weather in a city"}]
RESPONSES_TOOLS[0]["parameters"] = PARAMETERS
WEATHER = '{"city": "Paris", "temperature_c": 21, "sky": "sunny"}'
# Measured on this model, greedy: with the tool result as the last turn it calls get_weather again (its template's
# own layout, rendered as Qwen expects); with a user turn after the result it answers in a sentence. An agent loop
# that feeds results back unprompted needs a larger model; the parsing under test is the same either way.
THANKS = {"role": "user", "content": "Thanks. Now tell me the weather in a sentence."}
GREEDY = {"temperature": 0, "max_tokens": 128}


@pytest.fixture(scope="module")
def server() -> Iterator[ChatServer]:
    if not (QWEN / ".complete").exists():
        pytest.fail(f"model {QWEN} is not built; run `make model` (make test does it for you)")
    server = ChatServer(
        QWEN, CHAT_MODEL_ID=QWEN_ID, CHAT_MAX_MODEL_LEN="4096", CHAT_MAX_BATCH_SIZE="2", CHAT_MAX_CONCURRENCY="2"
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: ChatServer) -> openai.OpenAI:
    return server.client()


def _names_paris(arguments: str) -> bool:
    value = json.loads(arguments)
    return isinstance(value, dict) and "paris" in json.dumps(value).lower()


def test_qwens_own_template_lays_out_the_tools(server: ChatServer) -> None:
    body = {"model": QWEN_ID, "messages": [{"role": "user", "content": QUESTION}], "tools": TOOLS}
    tokens = httpx.post(server.base_url + "/tokenize", json=body, timeout=60).json()["tokens"]
    prompt = httpx.post(server.base_url + "/detokenize", json={"tokens": tokens}, timeout=60).json()["prompt"]
    # Qwen's template puts its default system prompt before the tools; the server's own tool prompt (for templates
    # that ignore tools) would be a system turn of its own, opening with "# Tools".
    assert prompt.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
    assert "<tools>" in prompt and '"name": "get_weather"' in prompt and "<tool_call>" in prompt


def test_the_model_calls_the_tool_then_answers_from_its_result(client: openai.OpenAI) -> None:
    ask = [{"role": "user", "content": QUESTION}]
    response = client.chat.completions.create(model=QWEN_ID, messages=ask, tools=TOOLS, tool_choice="auto", **GREEDY)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls", choice.message.content
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    assert _names_paris(call.function.arguments), call.function.arguments

    stream = client.chat.completions.create(
        model=QWEN_ID, messages=ask, tools=TOOLS, tool_choice="auto", stream=True, **GREEDY
    )
    chunks = [chunk for chunk in stream if chunk.choices]
    deltas = [d for c in chunks for d in c.choices[0].delta.tool_calls or []]
    assert deltas and deltas[0].index == 0 and deltas[0].id and deltas[0].type == "function"
    assert {d.index for d in deltas} == {0}
    assert "".join(d.function.name or "" for d in deltas if d.function) == "get_weather"
    assert "".join(d.function.arguments or "" for d in deltas if d.function) == call.function.arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]
    assert (choice.message.content or "").strip() == "".join(c.choices[0].delta.content or "" for c in chunks).strip()

    history = [
        *ask,
        {"role": "assistant", "content": choice.message.content, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": WEATHER},
        THANKS,
    ]
    answer = client.chat.completions.create(model=QWEN_ID, messages=history, tools=TOOLS, **GREEDY).choices[0]
    assert answer.finish_reason == "stop" and not answer.message.tool_calls
    text = answer.message.content or ""
    assert "21" in text or "sunny" in text.lower(), text


def test_responses_stream_a_function_call_item_and_take_its_output(client: openai.OpenAI) -> None:
    settings = {"temperature": 0, "max_output_tokens": 128}
    with client.responses.stream(
        model=QWEN_ID, input=QUESTION, tools=RESPONSES_TOOLS, tool_choice="auto", **settings
    ) as stream:
        kinds = [event.type for event in stream]
        first = stream.get_final_response()
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and _names_paris(call.arguments), call.arguments
    assert call.call_id.startswith("call_") and call.status == "completed"
    assert "response.function_call_arguments.done" in kinds and kinds[-1] == "response.completed"

    answer = client.responses.create(
        model=QWEN_ID,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": WEATHER}, THANKS],
        tools=RESPONSES_TOOLS,
        **settings,
    )
    assert [item.type for item in answer.output] == ["message"]
    assert "21" in answer.output_text or "sunny" in answer.output_text.lower(), answer.output_text


def test_messages_api_a_tool_use_block_then_an_answer_from_its_tool_result(server: ChatServer) -> None:
    """Anthropic's Messages API, through the `anthropic` SDK: the same choice of get_weather, as a tool_use block
    (streamed as input_json_delta), and the answer once the result comes back as a tool_result block."""
    claude = anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
    tools = [{"name": "get_weather", "description": "Current weather in a city", "input_schema": PARAMETERS}]
    ask = [{"role": "user", "content": QUESTION}]
    greedy = {"max_tokens": 128, "extra_body": {"temperature": 0}}  # anthropic 2.x has no temperature argument
    message = claude.messages.create(model=QWEN_ID, messages=ask, tools=tools, **greedy)
    assert message.stop_reason == "tool_use", message.content
    [call] = [block for block in message.content if block.type == "tool_use"]
    assert call.id.startswith("toolu_") and call.name == "get_weather" and _names_paris(json.dumps(call.input))

    with claude.messages.stream(model=QWEN_ID, messages=ask, tools=tools, **greedy) as stream:
        kinds = [event.type for event in stream]
        streamed = stream.get_final_message()
    assert "input_json" in kinds and streamed.stop_reason == "tool_use"
    [streamed_call] = [block for block in streamed.content if block.type == "tool_use"]
    assert (streamed_call.name, streamed_call.input) == (call.name, call.input)

    history = [
        *ask,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in message.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": WEATHER},
                {"type": "text", "text": THANKS["content"]},
            ],
        },
    ]
    answer = claude.messages.create(model=QWEN_ID, messages=history, tools=tools, **greedy)
    assert answer.stop_reason == "end_turn" and [block.type for block in answer.content] == ["text"]
    text = answer.content[0].text
    assert "21" in text or "sunny" in text.lower(), text
