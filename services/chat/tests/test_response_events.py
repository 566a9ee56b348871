"""The streamed response's events, without a model: their order and numbering, and that each one parses into the
`openai` package's own event types (the contract the SDK's stream helpers rely on)."""

from __future__ import annotations

from chat_service.responses.events import ResponseEvents
from chat_service.responses.items import response_object
from chat_service.serving.generation import GenerationStats
from openai.types.responses import Response, ResponseStreamEvent
from ortserve_common.protocol.chat import DeltaFunctionCall, DeltaToolCall
from ortserve_common.protocol.responses import ResponsesRequest
from pydantic import TypeAdapter

EVENT = TypeAdapter(ResponseStreamEvent)


def _parsed(events: list[dict]) -> list:
    return [EVENT.validate_python(event) for event in events]


def _call(index: int, arguments: str, first: bool = False) -> DeltaToolCall:
    if first:
        return DeltaToolCall(index=index, id=f"call_{index}", type="function", function=DeltaFunctionCall(name="f"))
    return DeltaToolCall(index=index, function=DeltaFunctionCall(arguments=arguments))


def test_text_then_a_call_closes_the_message_first() -> None:
    stream = ResponseEvents(parallel_tool_calls=True)
    events = [*stream.text("Hel"), *stream.text("lo"), *stream.tool_call(_call(0, "", True))]
    events += [*stream.tool_call(_call(0, '{"a":')), *stream.tool_call(_call(0, " 1}")), *stream.close(False)]
    parsed = _parsed(events)
    assert [e.type for e in parsed] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    assert parsed[4].text == "Hello" and parsed[10].arguments == '{"a": 1}'
    assert [item["type"] for item in stream.output] == ["message", "function_call"]
    assert stream.output[1]["call_id"] == "call_0" and stream.output[1]["status"] == "completed"


def test_blank_text_before_a_call_makes_no_message_and_a_second_call_is_dropped_when_not_parallel() -> None:
    stream = ResponseEvents(parallel_tool_calls=False)
    events = [*stream.text("\n"), *stream.tool_call(_call(0, "", True)), *stream.tool_call(_call(0, "{}"))]
    events += [*stream.tool_call(_call(1, "", True)), *stream.tool_call(_call(1, "{}")), *stream.close(False)]
    _parsed(events)
    assert [item["type"] for item in stream.output] == ["function_call"]


def test_an_empty_reply_still_has_its_message_and_an_incomplete_one_says_so() -> None:
    stream = ResponseEvents(parallel_tool_calls=True)
    parsed = _parsed(stream.close(True))
    assert parsed[-1].type == "response.output_item.done" and parsed[-1].item.status == "incomplete"
    assert stream.output[0]["content"][0]["text"] == ""


def test_the_response_object_parses_into_the_sdks_type() -> None:
    request = ResponsesRequest.model_validate(
        {"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": "required"}
    )
    stats = GenerationStats(prompt_tokens=7, completion_tokens=3, cached_tokens=4)
    stream = ResponseEvents(parallel_tool_calls=True)
    stream.text("Hi")
    stream.close(False)
    response = Response.model_validate(response_object(request, "resp_1", 1, "completed", stream.output, stats))
    assert response.output_text == "Hi" and response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (7, 3, 10)
    assert response.usage.input_tokens_details.cached_tokens == 4
