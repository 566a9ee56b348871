"""Open Responses on the real model (SmolLM2), against the chat service alone: responses and their SSE events pass
the spec's JSON schemas, assistant phase is kept, /v1/responses/compact keeps short turns and has the model summarize
long ones (a later request continues from the compaction item, per key), and WebSocket mode runs several turns on one
socket, continues store: false chains from the socket's own cache, answers previous_response_not_found for an id it
does not hold or evicted after a failed turn, and closes with a close frame when the service drains.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from chat_service.responses.compaction import SUMMARY_MARKER
from chat_testing import MODEL_ID, ChatServer
from ortserve_testing.openresponses_schema import assert_valid, assert_valid_event, assert_valid_response

GREEDY = {"temperature": 0, "max_output_tokens": 24}
KEEP_TOKENS = 120  # compact keeps turns up to this many prompt tokens; LONG_TURNS are well past it
SHORT_TURNS = [
    {"type": "message", "role": "user", "content": "The code word is slate."},
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "OK."}]},
]
LONG_TURNS = [
    {
        "type": "message",
        "role": "user",
        "content": "Our launch plan: " + "we ship on Tuesday and tell support first. " * 30,
    },
    {"type": "message", "role": "assistant", "content": "Understood: Tuesday, support first."},
]
FINISHED = ("response.completed", "response.incomplete")  # incomplete: max_output_tokens reached
TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")


@pytest.fixture(scope="module")
def server(smollm_path: Path) -> Iterator[ChatServer]:
    server = ChatServer(smollm_path, CHAT_COMPACT_KEEP_TOKENS=str(KEEP_TOKENS), CHAT_COMPACT_SUMMARY_TOKENS="48")
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def http(server: ChatServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        yield client


def _create(http: httpx.Client, key_id: str = "", **body: Any) -> dict[str, Any]:
    response = http.post("/v1/responses", json={"model": MODEL_ID, **GREEDY, **body}, headers=_owner(key_id))
    assert response.status_code == 200, response.text
    return response.json()


def _owner(key_id: str) -> dict[str, str]:
    return {"X-Ortserve-Api-Key-Id": key_id} if key_id else {}


def _compact(http: httpx.Client, key_id: str = "", **body: Any) -> httpx.Response:
    return http.post("/v1/responses/compact", json=body, headers=_owner(key_id))


def test_a_response_and_its_events_pass_the_spec_schemas(http: httpx.Client) -> None:
    body = _create(http, input="Say hello.", prompt_cache_key="k1", safety_identifier="s1")
    assert_valid_response(body)
    assert body["completed_at"] is None or body["completed_at"] >= body["created_at"]
    with http.stream(
        "POST", "/v1/responses", json={"model": MODEL_ID, "input": "Say hi.", "stream": True, **GREEDY}
    ) as s:
        lines = [line for line in s.iter_lines() if line.startswith("data: ") and line != "data: [DONE]"]
    events = [json.loads(line.removeprefix("data: ")) for line in lines]
    for event in events:
        assert_valid_event(event)
    assert events[0]["type"] == "response.created" and events[-1]["type"] in TERMINAL


def test_assistant_phase_is_accepted_and_echoed_in_the_input_items(http: httpx.Client) -> None:
    said = [
        {"type": "message", "role": "assistant", "phase": "commentary", "content": "I should answer with four."},
        {"type": "message", "role": "assistant", "phase": "final_answer", "content": "The number is four."},
        {"type": "message", "role": "user", "content": "Repeat only the number."},
    ]
    body = _create(http, input=said)
    assert_valid_response(body)
    items = http.get(f"/v1/responses/{body['id']}/input_items", params={"order": "asc"}).json()["data"]
    assert [item.get("phase") for item in items] == ["commentary", "final_answer", None]


def test_compact_keeps_short_turns_and_a_later_request_continues_from_them(http: httpx.Client) -> None:
    compacted = _compact(http, model=MODEL_ID, input=SHORT_TURNS, prompt_cache_key="compact-test")
    assert compacted.status_code == 200, compacted.text
    body = compacted.json()
    assert_valid(body, "CompactResource")
    assert body["usage"]["output_tokens"] == 0  # kept as they are: nothing generated
    question = {"type": "message", "role": "user", "content": "What is the code word?"}
    later = _create(http, input=[*body["output"], question])
    alone = _create(http, input=[question])
    assert_valid_response(later)
    assert later["usage"]["input_tokens"] > alone["usage"]["input_tokens"]
    items = http.get(f"/v1/responses/{later['id']}/input_items", params={"order": "asc"}).json()["data"]
    texts = [part["text"] for item in items for part in item["content"]]
    assert texts == ["The code word is slate.", "OK.", "What is the code word?"]


def test_compact_has_the_model_summarize_turns_that_do_not_fit(http: httpx.Client) -> None:
    compacted = _compact(http, model=MODEL_ID, input=LONG_TURNS)
    assert compacted.status_code == 200, compacted.text
    body = compacted.json()
    assert_valid(body, "CompactResource")
    assert body["usage"]["input_tokens"] > KEEP_TOKENS and body["usage"]["output_tokens"] > 0
    later = _create(http, input=[*body["output"], {"role": "user", "content": "When do we ship?"}])
    items = http.get(f"/v1/responses/{later['id']}/input_items", params={"order": "asc"}).json()["data"]
    assert items[0]["role"] == "developer" and items[0]["content"][0]["text"].startswith(SUMMARY_MARKER)
    assert len(items) == 2  # the summary stands in for both long turns


def test_compact_refusals(http: httpx.Client) -> None:
    missing_model = _compact(http, input=SHORT_TURNS)
    assert missing_model.status_code == 400 and missing_model.json()["error"]["param"] == "model"
    assert _compact(http, model=MODEL_ID).status_code == 400  # nothing to compact
    item = _compact(http, "alice", model=MODEL_ID, input=SHORT_TURNS).json()["output"][0]
    forged = {**item, "encrypted_content": "not-ours"}
    for key_id, given in (("bob", item), ("alice", forged)):  # another key's compaction, or one never made
        refused = http.post("/v1/responses", json={"model": MODEL_ID, "input": [given]}, headers=_owner(key_id))
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "compaction_not_found"
    assert _create(http, "alice", input=[item, {"role": "user", "content": "Hi"}])["status"] in (
        "completed",
        "incomplete",
    )


# WebSocket mode ----------------------------------------------------------------------------------------------------
def _ws_url(server: ChatServer) -> str:
    return server.base_url.replace("http://", "ws://") + "/v1/responses"


async def _turns(url: str, creates: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Each create sent once the previous turn ended; `previous_response_id: "<0>"` names turn 0's response."""
    turns: list[list[dict[str, Any]]] = []
    async with websockets.connect(url) as socket:
        for create in creates:
            previous = create.get("previous_response_id", "")
            if previous.startswith("<"):
                create = {**create, "previous_response_id": turns[int(previous[1:-1])][-1]["response"]["id"]}
            await socket.send(json.dumps({"type": "response.create", "model": MODEL_ID, **GREEDY, **create}))
            events = []
            while not events or events[-1]["type"] not in TERMINAL:
                events.append(json.loads(await socket.recv()))
            turns.append(events)
    return turns


def test_several_turns_on_one_socket_and_a_store_false_chain(server: ChatServer, http: httpx.Client) -> None:
    first, second, third = asyncio.run(
        _turns(
            _ws_url(server),
            [
                {"store": False, "input": "Remember the code word: cobalt. Reply with OK."},
                {"store": False, "previous_response_id": "<0>", "input": "What is the code word?"},
                {"store": False, "input": "Say hello."},
            ],
        )
    )
    for turn in (first, second, third):
        for event in turn:
            assert_valid_event(event, websocket=True)
        assert turn[0]["type"] == "response.created" and turn[-1]["type"] in FINISHED
        assert [e["sequence_number"] for e in turn] == list(range(len(turn)))
    chained, fresh = second[-1]["response"], third[-1]["response"]
    assert chained["previous_response_id"] == first[-1]["response"]["id"]
    assert chained["usage"]["input_tokens"] > fresh["usage"]["input_tokens"]  # it saw the first turn
    assert http.get(f"/v1/responses/{chained['id']}").status_code == 404  # store: false stays off the store


def test_previous_response_not_found_on_another_socket_or_after_a_failed_turn(server: ChatServer) -> None:
    url = _ws_url(server)
    (made,) = asyncio.run(_turns(url, [{"store": False, "input": "Reply with OK."}]))
    made_id = made[-1]["response"]["id"]
    (elsewhere,) = asyncio.run(_turns(url, [{"store": False, "previous_response_id": made_id, "input": "Hi"}]))
    assert elsewhere[-1]["type"] == "error" and elsewhere[-1]["error"]["code"] == "previous_response_not_found"
    assert elsewhere[-1]["status"] == 400
    stray_output = [{"type": "function_call_output", "call_id": "call_missing", "output": "no such call"}]
    ok, failed, retry, after = asyncio.run(
        _turns(
            url,
            [
                {"store": False, "input": "Reply with OK."},
                {"store": False, "previous_response_id": "<0>", "input": stray_output},
                {"store": False, "previous_response_id": "<0>", "input": "Reply with: stale"},
                {"store": False, "input": "Start again: reply with OK."},
            ],
        )
    )
    assert ok[-1]["type"] in FINISHED
    assert failed[-1]["type"] == "error" and failed[-1]["error"]["code"] == "tool_call_not_found"
    assert retry[-1]["type"] == "error" and retry[-1]["error"]["code"] == "previous_response_not_found"
    assert after[-1]["type"] in FINISHED  # the socket goes on after errors
    for event in [*failed, *retry]:
        assert_valid_event(event, websocket=True)


def test_a_draining_service_closes_its_sockets_with_a_close_frame(smollm_path: Path) -> None:
    server = ChatServer(smollm_path).start()

    async def idle_socket() -> int | None:
        async with websockets.connect(_ws_url(server)) as socket:
            await socket.send(json.dumps({"type": "response.create", "model": MODEL_ID, **GREEDY, "input": "Hi"}))
            while json.loads(await socket.recv())["type"] not in TERMINAL:
                pass
            stopping = threading.Thread(target=server.stop)  # SIGTERM: the drain starts
            stopping.start()
            try:
                await asyncio.wait_for(socket.recv(), 30)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else None
            finally:
                await asyncio.to_thread(stopping.join)
        return None

    try:
        # 1001 (going away) from the service's own check, or 1012 (service restart) from uvicorn's shutdown, whichever
        # comes first; never a dropped connection without a close frame.
        assert asyncio.run(idle_socket()) in (1001, 1012)
    finally:
        server.stop()
