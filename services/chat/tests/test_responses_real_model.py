"""/v1/responses on the real model through the OpenAI SDK, against the chat service alone: the response and its events
parse into the SDK's types, streamed text equals the non-streamed text, a chain sees exactly what chat completions
would be sent by hand and is served from the prefix cache, and stored responses survive a restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import openai
import pytest
from chat_testing import MODEL_ID, ChatServer

BLOCK_TOKENS = 16  # the prefix cache's granularity, set small so that the short prompts here fill blocks
GREEDY = {"temperature": 0, "max_output_tokens": 64}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("responses-state")


@pytest.fixture(scope="module")
def server(smollm_path: Path, data_dir: Path) -> Iterator[ChatServer]:
    server = ChatServer(smollm_path, CHAT_DATA_DIR=str(data_dir), CHAT_PREFIX_BLOCK_TOKENS=str(BLOCK_TOKENS)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: ChatServer) -> openai.OpenAI:
    return server.client()


def test_a_response_and_its_stream_say_the_same(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL_ID, input="Name a colour.", instructions="Be brief.", **GREEDY)
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status in ("completed", "incomplete") and response.output_text
    assert response.usage is not None
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.usage.output_tokens_details.reasoning_tokens == 0

    with client.responses.stream(model=MODEL_ID, input="Name a colour.", instructions="Be brief.", **GREEDY) as s:
        deltas = [event.delta for event in s if event.type == "response.output_text.delta"]
        final = s.get_final_response()
    assert "".join(deltas) == final.output_text == response.output_text
    assert final.usage is not None and final.usage.output_tokens == response.usage.output_tokens

    raw = list(
        client.responses.create(model=MODEL_ID, input="Name a colour.", instructions="Be brief.", stream=True, **GREEDY)
    )
    numbers = [event.sequence_number for event in raw]
    assert numbers == list(range(len(raw)))
    kinds = [event.type for event in raw]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        f"response.{final.status}",
    ]
    assert "".join(e.delta for e in raw if e.type == "response.output_text.delta") == response.output_text


def test_max_output_tokens_makes_it_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL_ID, input="Tell me a long story.", max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 3


def test_json_schema_output_validates(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=MODEL_ID,
        input="Invent a person.",
        temperature=0,
        max_output_tokens=60,
        text={"format": {"type": "json_schema", "name": "person", "schema": schema}},
    )
    jsonschema.validate(json.loads(response.output_text), schema)


def test_a_function_tool_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model=MODEL_ID,
        input="What is the weather in Paris?",
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
        temperature=0,
        max_output_tokens=40,
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert "city" in json.loads(calls[0].arguments)
    second = client.responses.create(
        model=MODEL_ID,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 31 degrees"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        **GREEDY,
    )
    assert second.output_text and second.previous_response_id == first.id

    with client.responses.stream(
        model=MODEL_ID,
        input="What is the weather in Paris?",
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
        temperature=0,
        max_output_tokens=40,
    ) as stream:
        done = [e for e in stream if e.type == "response.function_call_arguments.done"]
        streamed = stream.get_final_response()
    streamed_calls = [item for item in streamed.output if item.type == "function_call"]
    assert [c.arguments for c in streamed_calls] == [c.arguments for c in calls] == [e.arguments for e in done]


def test_a_chain_sees_what_chat_would_be_sent_and_reuses_the_cache(client: openai.OpenAI) -> None:
    questions = ["My name is Ada.", "What is my name?", "Say it again."]
    messages: list[dict[str, str]] = []
    previous, earlier_turn = None, 0
    for question in questions:
        response = client.responses.create(
            model=MODEL_ID,
            input=question,
            previous_response_id=previous,
            **GREEDY,  # type: ignore[arg-type]
        )
        messages.append({"role": "user", "content": question})
        chat = client.chat.completions.create(
            model=MODEL_ID,
            messages=messages,
            temperature=0,
            max_tokens=64,  # type: ignore[arg-type]
        )
        assert response.usage is not None and chat.usage is not None
        assert response.usage.input_tokens == chat.usage.prompt_tokens
        assert response.output_text == chat.choices[0].message.content
        if earlier_turn:
            # The earlier turn's prompt came from the prefix cache (all but a partial last block); its reply did not,
            # as its KV was computed a token at a time (CHAT_PREFIX_CACHE_REPLIES keeps it).
            cached = response.usage.input_tokens_details.cached_tokens
            assert earlier_turn - BLOCK_TOKENS <= cached < response.usage.input_tokens
        earlier_turn = response.usage.input_tokens
        messages.append({"role": "assistant", "content": response.output_text})
        previous = response.id


def test_stored_responses_survive_a_restart(server: ChatServer, client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL_ID,
        input=[{"role": "user", "content": "Hi"}, {"role": "user", "content": [{"type": "input_text", "text": "Yo"}]}],
        **GREEDY,
    )
    server.stop()
    server.start()
    again = client.responses.retrieve(response.id)
    assert again.output_text == response.output_text
    items = client.responses.input_items.list(response.id, order="asc", limit=1)
    assert [item.content[0].text for item in items] == ["Hi", "Yo"]  # type: ignore[union-attr]
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_truncation_auto_drops_the_oldest_turns_and_disabled_refuses(smollm_path: Path, tmp_path: Path) -> None:
    small = ChatServer(smollm_path, CHAT_DATA_DIR=str(tmp_path), CHAT_MAX_MODEL_LEN="256").start()
    try:
        client = small.client()
        story = "Once upon a time there was a lighthouse keeper who counted ships. " * 5
        first = client.responses.create(model=MODEL_ID, input=story, temperature=0, max_output_tokens=32)
        second = client.responses.create(
            model=MODEL_ID, input=story, previous_response_id=first.id, temperature=0, max_output_tokens=32
        )
        follow_up = {"model": MODEL_ID, "input": "Summarise.", "previous_response_id": second.id}
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(**follow_up, max_output_tokens=32)  # type: ignore[arg-type]
        assert refused.value.body["code"] == "context_length_exceeded"  # type: ignore[index]
        assert refused.value.body["param"] == "input"  # type: ignore[index]
        fitted = client.responses.create(**follow_up, truncation="auto", max_output_tokens=32)  # type: ignore[arg-type]
        assert fitted.usage is not None and fitted.usage.input_tokens + 32 <= 256
    finally:
        small.stop()


def test_sampler_extensions_reach_the_sampler(client: openai.OpenAI) -> None:
    """top_k 1 is greedy whatever the temperature, as in chat completions; out of range is a 400 naming it."""
    greedy = client.responses.create(model=MODEL_ID, input="Name a colour.", **GREEDY).output_text
    sampled = client.responses.create(
        model=MODEL_ID, input="Name a colour.", temperature=1.5, max_output_tokens=64, extra_body={"top_k": 1}
    )
    assert sampled.output_text == greedy
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=MODEL_ID, input="Hi", extra_body={"min_p": 2})
    assert refused.value.body["param"] == "min_p"
