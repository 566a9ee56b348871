"""/v1/messages on the real SmolLM2, through the official `anthropic` SDK: text, stop sequences, max_tokens, the
stream's events in Anthropic's order, and count_tokens agreeing with the usage; greedy."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest
from chat_testing import MODEL_ID, ChatServer

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# anthropic 2.x no longer names temperature among create()'s arguments; the API and this server still take it.
GREEDY = {"extra_body": {"temperature": 0}}


@pytest.fixture(scope="module")
def claude(chat_server: ChatServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=chat_server.base_url, api_key="unused", max_retries=0, timeout=120)


def test_a_text_answer_and_its_usage(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=MODEL_ID, max_tokens=48, **GREEDY, messages=QUESTION)
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.model == MODEL_ID and message.stop_reason == "end_turn" and message.stop_sequence is None
    [block] = message.content
    assert block.type == "text" and "Paris" in block.text
    counted = claude.messages.count_tokens(model=MODEL_ID, messages=QUESTION).input_tokens
    usage = message.usage
    assert usage.input_tokens + (usage.cache_read_input_tokens or 0) == counted > 10
    assert usage.output_tokens >= 3
    with_system = claude.messages.count_tokens(model=MODEL_ID, system="Answer in one sentence.", messages=QUESTION)
    assert with_system.input_tokens != counted  # SmolLM2's template puts a default system prompt in its place


def test_stop_sequences_and_max_tokens(claude: anthropic.Anthropic) -> None:
    free = claude.messages.create(model=MODEL_ID, max_tokens=48, **GREEDY, messages=QUESTION)
    text = free.content[0].text
    word = "Paris"
    assert word in text
    stopped = claude.messages.create(
        model=MODEL_ID, max_tokens=48, **GREEDY, messages=QUESTION, stop_sequences=["zebra", word]
    )
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", word)
    assert stopped.content[0].text == text[: text.index(word)]
    short = claude.messages.create(model=MODEL_ID, max_tokens=3, **GREEDY, messages=QUESTION)
    assert short.stop_reason == "max_tokens" and short.usage.output_tokens == 3


def test_the_stream_in_anthropics_order_gives_the_same_message(
    claude: anthropic.Anthropic, chat_server: ChatServer
) -> None:
    whole = claude.messages.create(model=MODEL_ID, max_tokens=32, **GREEDY, messages=QUESTION)
    # On the wire (the SDK drops pings): event names, each matching its data's type.
    body = {"model": MODEL_ID, "max_tokens": 32, "temperature": 0, "messages": QUESTION, "stream": True}
    response = httpx.post(chat_server.base_url + "/v1/messages", json=body, timeout=120)
    frames = [frame.split("\n") for frame in response.text.split("\n\n") if frame]
    events = [(name.removeprefix("event: "), json.loads(data.removeprefix("data: "))) for name, data in frames]
    assert all(name == data["type"] for name, data in events)
    wire = [name for name, _ in events]
    assert wire[:3] == ["message_start", "content_block_start", "ping"]
    assert wire[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(wire[3:-3]) == {"content_block_delta"}
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == whole.content[0].text
    # The SDK's own stream helper assembles the same message.
    with claude.messages.stream(model=MODEL_ID, max_tokens=32, **GREEDY, messages=QUESTION) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == whole.content[0].text and final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_streamed_stop_sequence(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model=MODEL_ID, max_tokens=48, **GREEDY, messages=QUESTION, stop_sequences=["Paris"]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "Paris" not in text and (final.stop_reason, final.stop_sequence) == ("stop_sequence", "Paris")
