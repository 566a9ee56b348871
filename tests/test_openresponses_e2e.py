"""Open Responses through nginx (TLS, the key check) on the real model: WebSocket mode upgrades on /v1/responses only,
with a key, runs several turns on one socket and continues a store: false chain there; /v1/responses/compact answers
per key, and its compaction item continues a chain over a socket, as the Open Responses compliance suite does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from ortserve_testing.openresponses_schema import assert_valid, assert_valid_event, assert_valid_response
from stack_testing import Stack
from test_conversations_e2e import _new_key

CHAT_MODEL = "smollm2-135m-instruct"
GREEDY = {"temperature": 0, "max_output_tokens": 24}
TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")
FINISHED = ("response.completed", "response.incomplete")


def _ws_url(stack: Stack, path: str = "/v1/responses") -> str:
    return stack.base_url.replace("https://", "wss://") + path


async def _session(stack: Stack, key: str, creates: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Each create sent once the turn before it ended; a previous_response_id of "<0>" names turn 0's response."""
    turns: list[list[dict[str, Any]]] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(_ws_url(stack), ssl=stack.ssl_context(), additional_headers=headers) as socket:
        for create in creates:
            if create.get("previous_response_id") == "<0>":
                create = {**create, "previous_response_id": turns[0][-1]["response"]["id"]}
            await socket.send(json.dumps({"type": "response.create", "model": CHAT_MODEL, **GREEDY, **create}))
            events = []
            while not events or events[-1]["type"] not in TERMINAL:
                events.append(json.loads(await socket.recv()))
            turns.append(events)
    return turns


def test_websocket_turns_and_a_store_false_chain_through_the_proxy(stack: Stack) -> None:
    first, second, missing = asyncio.run(
        _session(
            stack,
            stack.api_key,
            [
                {"store": False, "input": "Remember the code word: cobalt. Reply with OK."},
                {"store": False, "previous_response_id": "<0>", "input": "What is the code word?"},
                {"store": False, "previous_response_id": "resp_never_made", "input": "Hi"},
            ],
        )
    )
    for event in [*first, *second, *missing]:
        assert_valid_event(event, websocket=True)
    assert first[-1]["type"] in FINISHED and second[-1]["type"] in FINISHED
    assert second[-1]["response"]["previous_response_id"] == first[-1]["response"]["id"]
    assert missing[-1]["type"] == "error" and missing[-1]["error"]["code"] == "previous_response_not_found"


@pytest.mark.parametrize(
    ("path", "key", "status"),
    [
        ("/v1/responses", None, 401),  # the key check runs on the upgrade request too
        ("/v1/responses", "sk-wrong", 401),
        ("/v1/chat/completions", "valid", 405),  # no other route upgrades: GET there is not served
    ],
)
def test_the_upgrade_needs_a_key_and_is_only_on_responses(
    stack: Stack, path: str, key: str | None, status: int
) -> None:
    headers = {"Authorization": f"Bearer {stack.api_key if key == 'valid' else key}"} if key else {}

    async def connect() -> None:
        async with websockets.connect(_ws_url(stack, path), ssl=stack.ssl_context(), additional_headers=headers):
            pass

    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(connect())
    assert refused.value.response.status_code == status
    assert "error" in json.loads(refused.value.response.body or b"{}")


def test_a_compaction_continues_over_a_socket_and_stays_with_its_key(stack: Stack) -> None:
    alice, bob = _new_key(stack, "compact-alice"), _new_key(stack, "compact-bob")
    turns = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "The code word is slate."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "OK."}]},
    ]
    with stack.http() as http:
        compacted = http.post(
            "/v1/responses/compact",
            json={"model": CHAT_MODEL, "input": turns},
            headers={"Authorization": f"Bearer {alice['key']}"},
        )
        assert compacted.status_code == 200, compacted.text
        no_model = http.post(
            "/v1/responses/compact", json={"input": turns}, headers={"Authorization": f"Bearer {alice['key']}"}
        )
    assert no_model.status_code == 400 and no_model.json()["error"]["param"] == "model"
    body = compacted.json()
    assert_valid(body, "CompactResource")
    ask = {"store": False, "input": [*body["output"], {"role": "user", "content": "What is the code word?"}]}
    (as_alice,) = asyncio.run(_session(stack, alice["key"], [ask]))
    (as_bob,) = asyncio.run(_session(stack, bob["key"], [ask]))
    assert as_alice[-1]["type"] in FINISHED
    assert_valid_response(as_alice[-1]["response"])
    assert as_bob[-1]["type"] == "error" and as_bob[-1]["error"]["code"] == "compaction_not_found"
