"""Anthropic's Messages API mapped onto the chat pipeline, without a model: request → chat pieces, reply → content
blocks, chat deltas → Anthropic's stream events, and errors → Anthropic's error object."""

from __future__ import annotations

import pytest
from chat_service.messages.blocks import content_blocks, error_body, stop_reason, usage
from chat_service.messages.events import MessageEvents
from chat_service.messages.input import chat_request, refuse_unsupported
from chat_service.serving.generation import GenerationStats
from ortserve_common.errors import OpenAIError, overloaded
from ortserve_common.protocol.chat import (
    AssistantMessage,
    DeltaFunctionCall,
    DeltaToolCall,
    NamedToolChoice,
    ResponseFunctionCall,
    ResponseToolCall,
)
from ortserve_common.protocol.messages import CountTokensRequest, MessagesRequest

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _request(**fields) -> MessagesRequest:
    body = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}], **fields}
    return MessagesRequest.model_validate(body)


def test_system_blocks_turns_and_samplers_become_a_chat_request() -> None:
    request = _request(
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind.", "cache_control": {}}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
            {"role": "user", "content": "Name a colour."},
        ],
        stop_sequences=["a", "b", "c", "d", "e"],
        temperature=0,
        top_k=5,
        metadata={"user_id": "ada"},
        stream=True,
    )
    chat = chat_request(request)
    assert [(m.role, m.content) for m in chat.messages] == [
        ("system", "Be brief.\nBe kind."),
        ("user", "Hello\nthere"),
        ("assistant", "Hi!"),
        ("user", "Name a colour."),
    ]
    assert (chat.max_tokens, chat.temperature, chat.top_k, chat.user, chat.stream) == (16, 0, 5, "ada", True)
    assert chat.stop == ["a", "b", "c", "d", "e"]  # Anthropic sets no limit of 4, and the matcher needs none
    assert chat.tools is None and chat.tool_choice is None


def test_tool_use_and_tool_result_blocks_become_tool_calls_and_tool_messages() -> None:
    request = _request(
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "21 C"}]},
                    {"type": "text", "text": "Thanks."},
                ],
            },
        ],
    )
    chat = chat_request(request)
    user, assistant, result, thanks = chat.messages
    assert assistant.content is None and assistant.tool_calls is not None
    assert assistant.tool_calls[0].id == "toolu_1" and assistant.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert (result.role, result.tool_call_id, result.content) == ("tool", "toolu_1", "21 C")
    assert (thanks.role, thanks.content) == ("user", "Thanks.")
    assert chat.tools is not None and chat.tools[0].function.parameters == WEATHER_TOOL["input_schema"]
    assert isinstance(chat.tool_choice, NamedToolChoice) and chat.tool_choice.function.name == "get_weather"
    assert chat.parallel_tool_calls is False


@pytest.mark.parametrize(("choice", "expected"), [("auto", "auto"), ("any", "required"), ("none", "none")])
def test_tool_choice_types(choice: str, expected: str) -> None:
    assert chat_request(_request(tools=[WEATHER_TOOL], tool_choice={"type": choice})).tool_choice == expected


def test_an_errored_tool_result_says_so_in_its_text() -> None:
    request = _request(
        messages=[
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x", "is_error": True}]}
        ]
    )
    assert chat_request(request).messages[-1].content == "Error: x"


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64"}}]}]},
            "messages[0].content[0].type",
            "Documents",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}]},
            "messages[0].content[0].source.data",
            "needs its data",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "id": "f"}}]}]},
            "messages[0].content[0].source.type",
            "image source must be",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0lG"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].source.media_type",
            "image/gif",
        ),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking", "thinking"),
        ({"output_config": {"format": {"type": "json_schema", "schema": {}}}}, "output_config.format", "Structured"),
        ({"tools": [{"name": "web", "type": "web_search_20250305"}]}, "tools[0].type", "Server tool"),
        ({"tools": [{"name": "bad name!"}]}, "tools[0].name", "tools[0].name"),
        ({"tools": [WEATHER_TOOL], "tool_choice": {"type": "tool"}}, "tool_choice.name", "name"),
        (
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "The"}]},
            "messages[1]",
            "prefill",
        ),
    ],
)
def test_refusals_name_their_field(fields: dict, param: str, says: str) -> None:
    request = _request(**fields)
    with pytest.raises(OpenAIError) as refused:
        refuse_unsupported(request)
        chat_request(request)
    assert (refused.value.status, refused.value.param) == (400, param) and says in refused.value.message


def test_image_blocks_become_image_parts_in_order_naming_their_source() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}
    content = [{"type": "text", "text": "Read this:"}, image, {"type": "text", "text": "Thanks."}]
    [message] = chat_request(_request(messages=[{"role": "user", "content": content}])).messages
    assert isinstance(message.content, list) and [p.type for p in message.content] == ["text", "image_url", "text"]
    [part] = message.images()
    assert part.image_url.url == "data:image/png;base64,iVBORw0K" and part.param == "messages[0].content[1].source.data"


def test_count_tokens_takes_the_same_prompt_without_max_tokens() -> None:
    body = {"model": "m", "system": "S", "messages": [{"role": "user", "content": "Hi"}], "tools": [WEATHER_TOOL]}
    chat = chat_request(CountTokensRequest.model_validate(body))
    assert [m.role for m in chat.messages] == ["system", "user"] and chat.max_tokens is None and chat.tools


def test_reply_blocks_stop_reasons_and_usage() -> None:
    call = ResponseToolCall(id="call_abc", function=ResponseFunctionCall(name="get_weather", arguments='{"city":"P"}'))
    reply = AssistantMessage(content="Let me look.", tool_calls=[call])
    assert content_blocks(reply) == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_abc", "name": "get_weather", "input": {"city": "P"}},
    ]
    assert content_blocks(AssistantMessage(content="")) == []
    stats = GenerationStats(prompt_tokens=40, completion_tokens=7, cached_tokens=32)
    assert stop_reason("tool_calls", stats) == ("tool_use", None)
    assert stop_reason("length", stats) == ("max_tokens", None)
    assert stop_reason("stop", stats) == ("end_turn", None)
    stats.stop_sequence = "\n\n"
    assert stop_reason("stop", stats) == ("stop_sequence", "\n\n")
    assert usage(stats) == {
        "input_tokens": 8,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 32,
    }


def test_stream_events_text_then_a_tool_call() -> None:
    events = MessageEvents()
    out = events.start("msg_1", "m", 12)
    out += events.text("  ")  # held: it may come before a tool call only
    out += events.text("Hello")
    out += events.text(" world")
    out += events.tool_call(
        DeltaToolCall(index=0, id="call_x", type="function", function=DeltaFunctionCall(name="f", arguments=""))
    )
    out += events.tool_call(DeltaToolCall(index=0, function=DeltaFunctionCall(arguments='{"a": 1}')))
    out += events.close(("tool_use", None), {"input_tokens": 12, "output_tokens": 9})
    assert [e["type"] for e in out] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert out[0]["message"]["content"] == [] and out[0]["message"]["usage"]["input_tokens"] == 12
    assert out[1]["content_block"] == {"type": "text", "text": ""} and out[3]["delta"]["text"] == "  Hello"
    assert out[6] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_x", "name": "f", "input": {}},
    }
    assert out[7]["delta"] == {"type": "input_json_delta", "partial_json": '{"a": 1}'} and out[7]["index"] == 1
    assert out[9]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}


def test_a_tool_call_alone_gets_no_text_block_and_an_empty_reply_still_pings() -> None:
    events = MessageEvents()
    out = events.text("\n")
    out += events.tool_call(DeltaToolCall(index=0, id="call_y", function=DeltaFunctionCall(name="f", arguments="{}")))
    assert [e["type"] for e in out] == ["content_block_start", "ping", "content_block_delta"]
    empty = MessageEvents().close(("end_turn", None), {"output_tokens": 1})
    assert [e["type"] for e in empty] == ["ping", "message_delta", "message_stop"]


@pytest.mark.parametrize(
    ("error", "status", "type_"),
    [
        (OpenAIError(400, "bad", param="max_tokens"), 400, "invalid_request_error"),
        (OpenAIError(401, "no key", "authentication_error"), 401, "authentication_error"),
        (OpenAIError(403, "no", "permission_error"), 403, "permission_error"),
        (OpenAIError(404, "unknown model", param="model"), 404, "not_found_error"),
        (OpenAIError(413, "too big"), 413, "request_too_large"),
        (overloaded("queue full", 429, 1), 429, "rate_limit_error"),
        (overloaded("waited too long", 503, 1), 503, "overloaded_error"),
        (OpenAIError(500, "bug", "server_error"), 500, "api_error"),
    ],
)
def test_errors_in_anthropic_shape(error: OpenAIError, status: int, type_: str) -> None:
    body = error_body(error)
    assert error.status == status and body["type"] == "error" and body["error"]["type"] == type_
    assert set(body["error"]) == {"type", "message"} and error.message in body["error"]["message"]
