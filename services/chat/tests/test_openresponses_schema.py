"""What /v1/responses builds, checked against the Open Responses specification's own JSON schemas (vendored in
ortserve_testing/openresponses), without a model: the response object in each status, every streamed event, the
WebSocket error envelope, the compaction object; and the request rules around them (phase kept, tool outputs that
answer no call refused, WebSocket messages that are not a response.create refused)."""

from __future__ import annotations

import pytest
from chat_service.responses.compaction import compaction_object
from chat_service.responses.events import ResponseEvents
from chat_service.responses.input import check_tool_outputs, input_items
from chat_service.responses.items import response_object
from chat_service.responses.socket_session import error_event, parse_create, previous_response_not_found
from chat_service.serving.generation import GenerationStats
from ortserve_common.errors import OpenAIError
from ortserve_common.protocol.chat import DeltaFunctionCall, DeltaToolCall
from ortserve_common.protocol.responses import CompactRequest, ResponsesRequest
from ortserve_testing.openresponses_schema import (
    assert_valid,
    assert_valid_event,
    assert_valid_response,
    event_schemas,
    schema_errors,
)
from pydantic import ValidationError

REQUEST = ResponsesRequest.model_validate(
    {
        "model": "m",
        "input": "hi",
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        "prompt_cache_key": "cache-1",
        "safety_identifier": "user-7",
    }
)
STATS = GenerationStats(prompt_tokens=7, completion_tokens=3, cached_tokens=4)


def _streamed(events: ResponseEvents) -> list[dict]:
    """A whole stream as the serving layer frames it: created, in_progress, the item events, completed."""
    snapshot = response_object(REQUEST, "resp_1", 1, "in_progress", [])
    out = [
        events.event("response.created", response=snapshot),
        events.event("response.in_progress", response=snapshot),
    ]
    out += [*events.text("It is "), *events.text("sunny."), *events.close(False)]
    final = response_object(REQUEST, "resp_1", 1, "completed", events.output, STATS)
    return [*out, events.event("response.completed", response=final)]


@pytest.mark.parametrize("status", ["completed", "incomplete", "in_progress", "failed"])
def test_the_response_object_has_every_field_the_spec_requires(status: str) -> None:
    stream = ResponseEvents(parallel_tool_calls=True)
    stream.text("Hi")
    stream.close(status == "incomplete")
    error = {"code": "server_error", "message": "boom"} if status == "failed" else None
    stats = None if status == "in_progress" else STATS
    body = response_object(REQUEST, "resp_1", 1, status, stream.output, stats, error=error)
    assert_valid_response(body)
    assert (body["completed_at"] is not None) == (status == "completed")
    echoed = (body["prompt_cache_key"], body["safety_identifier"], body["service_tier"])
    assert echoed == ("cache-1", "user-7", "default")
    assert (body["presence_penalty"], body["frequency_penalty"], body["top_logprobs"]) == (0.0, 0.0, 0)


def test_the_schema_check_fails_on_a_missing_or_mistyped_field() -> None:
    body = response_object(REQUEST, "resp_1", 1, "completed", [], STATS)
    del body["completed_at"]
    body["top_logprobs"] = None
    errors = schema_errors(body, "ResponseResource")
    assert any("completed_at" in e for e in errors) and any("top_logprobs" in e for e in errors)


def test_every_streamed_event_matches_its_schema() -> None:
    events = _streamed(ResponseEvents(parallel_tool_calls=True))
    for event in events:
        assert_valid_event(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_a_tool_call_streams_valid_events() -> None:
    stream = ResponseEvents(parallel_tool_calls=True)
    first = DeltaToolCall(index=0, id="call_0", type="function", function=DeltaFunctionCall(name="get_weather"))
    events = [*stream.tool_call(first)]
    events += stream.tool_call(DeltaToolCall(index=0, function=DeltaFunctionCall(arguments='{"city": "Paris"}')))
    events += stream.close(False)
    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.done" in kinds
    for event in events:
        assert_valid_event(event)
    assert_valid_response(response_object(REQUEST, "resp_1", 1, "completed", stream.output, STATS))


def test_a_websocket_error_is_the_specs_envelope() -> None:
    event = error_event(previous_response_not_found("resp_gone"))
    assert_valid_event(event, websocket=True)
    assert event["status"] == 400 and event["error"]["code"] == "previous_response_not_found"
    assert "error" in event_schemas()  # over SSE the error event has a schema of its own too


def test_the_compaction_object_matches_the_spec() -> None:
    body = compaction_object("resp_c", 40, 12)
    assert_valid(body, "CompactResource")
    assert body["object"] == "response.compaction" and body["output"][0]["type"] == "compaction"
    assert body["usage"]["total_tokens"] == 52


def test_compact_needs_a_model() -> None:
    with pytest.raises(ValidationError):
        CompactRequest.model_validate({"input": "hi"})


def test_an_assistant_phase_is_accepted_and_kept_with_its_item() -> None:
    request = ResponsesRequest.model_validate(
        {
            "model": "m",
            "input": [
                {"type": "message", "role": "assistant", "phase": "commentary", "content": "Checking."},
                {"type": "message", "role": "assistant", "phase": "final_answer", "content": "Four."},
                {"type": "message", "role": "user", "content": "Again?"},
            ],
        }
    )
    items = input_items(request.input)
    assert [item.get("phase") for item in items] == ["commentary", "final_answer", None]
    with pytest.raises(ValidationError):
        ResponsesRequest.model_validate({"model": "m", "input": [{"role": "assistant", "phase": "x", "content": ""}]})


def test_a_tool_output_must_answer_a_call_made_earlier() -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}
    answer = {"type": "function_call_output", "call_id": "call_1", "output": "ok"}
    check_tool_outputs([call], [answer])  # answers a call in the chain
    check_tool_outputs([], [call, answer])  # or one in the same input
    with pytest.raises(OpenAIError) as refused:
        check_tool_outputs([call], [{**answer, "call_id": "call_missing"}])
    assert refused.value.status == 400 and refused.value.param == "input[0].call_id"


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ("not json", None),
        ('{"type": "response.cancel"}', "type"),
        ('{"type": "response.create", "model": "m", "input": "hi", "stream": true}', "stream"),
        ('{"type": "response.create", "input": "hi"}', "model"),
    ],
)
def test_a_websocket_message_that_is_not_a_valid_response_create_is_refused(message: str, param: str | None) -> None:
    with pytest.raises(OpenAIError) as refused:
        parse_create(message)
    assert refused.value.status == 400 and refused.value.param == param
    assert_valid_event(error_event(refused.value), websocket=True)


def test_a_response_create_message_is_a_request() -> None:
    request = parse_create('{"type": "response.create", "model": "m", "store": false, "input": "hi"}')
    assert request.model == "m" and request.store is False
