"""/v1/conversations and /v1/prompt-templates over HTTP, on a scripted fake engine (the store is real SQLite).

The real-model tests (test_conversations_real_model.py) prove that the history and templates reach the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_service.main import create_app
from chat_service.serving.chat_context import fit_history
from chat_service.settings import ChatSettings
from fastapi.testclient import TestClient
from ortserve_common.protocol.chat import ChatMessage
from test_http_layer_fake_engine import FakeEngine

ADMIN = {"Authorization": "Bearer admin-secret"}
KEY_A = {"X-Ortserve-Api-Key-Id": "key_a"}
KEY_B = {"X-Ortserve-Api-Key-Id": "key_b"}


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    settings = ChatSettings(model_path=tmp_path, model_id="fake", data_dir=tmp_path / "data", admin_key="admin-secret")
    with TestClient(create_app(settings, engine_factory=lambda _p, _s: FakeEngine("Hi!"))) as client:
        yield client


def _error(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def _chat(http: TestClient, content: str, headers: dict[str, str] = KEY_A, **extra: object):  # type: ignore[no-untyped-def]
    body = {"model": "fake", "messages": [{"role": "user", "content": content}], **extra}
    return http.post("/v1/chat/completions", json=body, headers=headers)


def _texts(http: TestClient, conversation_id: str, headers: dict[str, str] = KEY_A) -> list[tuple[str, str]]:
    items = http.get(f"/v1/conversations/{conversation_id}/items?order=asc&limit=100", headers=headers).json()
    return [(item["role"], item["content"][0]["text"]) for item in items["data"]]


def test_a_chat_that_names_a_conversation_appends_its_turn(http: TestClient) -> None:
    conversation = http.post("/v1/conversations", json={"items": [{"role": "user", "content": "hello"}]}, headers=KEY_A)
    assert conversation.status_code == 200 and conversation.json()["object"] == "conversation"
    cid = conversation.json()["id"]
    first = _chat(http, "one", conversation=cid)
    second = _chat(http, "two", conversation={"id": cid})  # the Responses API's object form works too
    assert first.status_code == second.status_code == 200
    # The second prompt carried the first turn: it is longer by exactly that turn's rendering.
    assert second.json()["usage"]["prompt_tokens"] > first.json()["usage"]["prompt_tokens"]
    assert _texts(http, cid) == [
        ("user", "hello"),
        ("user", "one"),
        ("assistant", "Hi!"),
        ("user", "two"),
        ("assistant", "Hi!"),
    ]


def test_a_stream_appends_its_turn_once_it_ends(http: TestClient) -> None:
    cid = http.post("/v1/conversations", json={}, headers=KEY_A).json()["id"]
    body = {"model": "fake", "messages": [{"role": "user", "content": "s"}], "stream": True, "conversation": cid}
    with http.stream("POST", "/v1/chat/completions", json=body, headers=KEY_A) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert _texts(http, cid) == [("user", "s"), ("assistant", "Hi!")]


def test_conversations_are_private_to_their_key(http: TestClient) -> None:
    cid = http.post("/v1/conversations", json={"metadata": {"team": "a"}}, headers=KEY_A).json()["id"]
    assert _error(http.get(f"/v1/conversations/{cid}", headers=KEY_B), 404)["code"] == "not_found"
    assert _error(_chat(http, "x", KEY_B, conversation=cid), 404)["param"] == "conversation"
    assert _error(http.delete(f"/v1/conversations/{cid}", headers=KEY_B), 404)["code"] == "not_found"
    item = http.post(
        f"/v1/conversations/{cid}/items", json={"items": [{"role": "user", "content": "x"}]}, headers=KEY_A
    )
    item_id = item.json()["first_id"]
    assert http.get(f"/v1/conversations/{cid}/items/{item_id}", headers=KEY_A).json()["id"] == item_id
    other = _error(http.get(f"/v1/conversations/{cid}/items/{item_id}", headers=KEY_B), 404)
    assert other["message"] == f"No conversation found with id '{cid}'."
    missing = _error(http.get(f"/v1/conversations/{cid}/items/msg_nope", headers=KEY_A), 404)
    assert missing["message"] == "No item found with id 'msg_nope'."
    assert http.get("/v1/conversations", headers=KEY_B).json()["data"] == []
    assert [c["id"] for c in http.get("/v1/conversations", headers=KEY_A).json()["data"]] == [cid]


def test_crud_and_pagination(http: TestClient) -> None:
    ids = [http.post("/v1/conversations", json={}, headers=KEY_A).json()["id"] for _ in range(5)]
    page = http.get("/v1/conversations?limit=2", headers=KEY_A).json()
    assert [c["id"] for c in page["data"]] == ids[::-1][:2] and page["has_more"] and page["last_id"] == ids[3]
    rest = http.get(f"/v1/conversations?limit=10&after={page['last_id']}", headers=KEY_A).json()
    assert [c["id"] for c in rest["data"]] == ids[::-1][2:] and not rest["has_more"]

    updated = http.post(f"/v1/conversations/{ids[0]}", json={"metadata": {"k": "v"}}, headers=KEY_A)
    assert updated.json()["metadata"] == {"k": "v"}
    added = http.post(
        f"/v1/conversations/{ids[0]}/items",
        json={
            "items": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "what time is it?"}]},
                {"type": "function_call", "call_id": "call_1", "name": "clock", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "noon"},
            ]
        },
        headers=KEY_A,
    ).json()
    assert [item["type"] for item in added["data"]] == ["message", "function_call", "function_call_output"]
    call = http.get(f"/v1/conversations/{ids[0]}/items/{added['data'][1]['id']}", headers=KEY_A).json()
    assert call["name"] == "clock" and call["call_id"] == "call_1"
    # A chat on this history renders the call and its result (the fake template shows them as text).
    assert _chat(http, "and now?", conversation=ids[0]).status_code == 200
    after_delete = http.delete(f"/v1/conversations/{ids[0]}/items/{added['data'][0]['id']}", headers=KEY_A)
    assert after_delete.json()["id"] == ids[0]
    assert len(http.get(f"/v1/conversations/{ids[0]}/items", headers=KEY_A).json()["data"]) == 4

    deleted = http.delete(f"/v1/conversations/{ids[0]}", headers=KEY_A).json()
    assert deleted == {"id": ids[0], "object": "conversation.deleted", "deleted": True}
    assert _error(http.get(f"/v1/conversations/{ids[0]}/items", headers=KEY_A), 404)["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("post", "/v1/conversations", {"items": [{"role": "robot", "content": "x"}]}, "items[0].role"),
        ("post", "/v1/conversations", {"items": [{"type": "image", "url": "x"}]}, "items[0]"),
        ("post", "/v1/conversations", {"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ("post", "/v1/conversations", {"items": [{"role": "user", "content": "x"}] * 21}, "items"),
        ("get", "/v1/conversations?limit=0", None, "limit"),
        ("get", "/v1/conversations?limit=101", None, "limit"),
        ("get", "/v1/conversations?order=sideways", None, "order"),
        ("get", "/v1/conversations?after=conv_nope", None, "after"),
    ],
)
def test_bad_input_gets_a_400_naming_the_field(
    http: TestClient, method: str, path: str, body: dict | None, param: str
) -> None:
    response = http.request(method.upper(), path, json=body, headers=KEY_A)
    assert _error(response, 400)["param"] == param


def test_a_conversation_takes_one_choice_and_must_exist(http: TestClient) -> None:
    cid = http.post("/v1/conversations", json={}, headers=KEY_A).json()["id"]
    assert _error(_chat(http, "x", n=2, conversation=cid), 400)["param"] == "n"
    assert _error(_chat(http, "x", conversation="conv_missing"), 404)["param"] == "conversation"
    assert _texts(http, cid) == []  # a refused request stores nothing


def test_prompt_templates_need_the_admin_key(http: TestClient) -> None:
    body = {"name": "brief", "system_prompt": "Be brief.", "parameters": {"max_tokens": 2}}
    assert _error(http.post("/v1/prompt-templates", json=body), 401)["code"] == "missing_api_key"
    wrong = {"Authorization": "Bearer sk-a-normal-key"}
    assert _error(http.get("/v1/prompt-templates", headers=wrong), 401)["code"] == "invalid_api_key"
    created = http.post("/v1/prompt-templates", json=body, headers=ADMIN)
    assert created.status_code == 201 and created.json()["parameters"] == {"max_tokens": 2}
    assert _error(http.post("/v1/prompt-templates", json=body, headers=ADMIN), 409)["code"] == "already_exists"
    bad_name = {**body, "name": "no spaces allowed"}
    assert _error(http.post("/v1/prompt-templates", json=bad_name, headers=ADMIN), 400)["param"] == "name"
    bad_parameter = {**body, "name": "hot", "parameters": {"temperature": 3}}
    assert _error(http.post("/v1/prompt-templates", json=bad_parameter, headers=ADMIN), 400)["param"] == (
        "parameters.temperature"
    )
    assert [t["name"] for t in http.get("/v1/prompt-templates", headers=ADMIN).json()["data"]] == ["brief"]
    replaced = http.put("/v1/prompt-templates/brief", json={"system_prompt": "Be very brief."}, headers=ADMIN)
    assert replaced.json()["system_prompt"] == "Be very brief." and replaced.json()["parameters"] == {}
    assert _error(http.put("/v1/prompt-templates/nope", json={"system_prompt": "x"}, headers=ADMIN), 404)
    assert http.delete("/v1/prompt-templates/brief", headers=ADMIN).json()["deleted"] is True
    assert _error(http.get("/v1/prompt-templates/brief", headers=ADMIN), 404)["code"] == "prompt_template_not_found"


def test_a_template_gives_its_system_prompt_and_defaults_and_the_request_wins(http: TestClient) -> None:
    template = {"name": "brief", "system_prompt": "Be brief.", "parameters": {"max_tokens": 2}}
    http.post("/v1/prompt-templates", json=template, headers=ADMIN)
    plain = _chat(http, "x").json()
    templated = _chat(http, "x", prompt_template="brief").json()
    # <system>Be brief. is 17 characters, one token each on the fake engine.
    assert templated["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"] + len("<system>Be brief.")
    assert templated["usage"]["completion_tokens"] == 2 and templated["choices"][0]["finish_reason"] == "length"
    own = _chat(http, "x", prompt_template="brief", max_tokens=3).json()
    assert own["usage"]["completion_tokens"] == 3
    assert _error(_chat(http, "x", prompt_template="missing"), 404)["param"] == "prompt_template"


def test_a_template_with_a_conversation_is_not_stored_in_it(http: TestClient) -> None:
    http.post("/v1/prompt-templates", json={"name": "t", "system_prompt": "Sys."}, headers=ADMIN)
    cid = http.post("/v1/conversations", json={}, headers=KEY_A).json()["id"]
    assert _chat(http, "q", prompt_template="t", conversation=cid).status_code == 200
    assert _texts(http, cid) == [("user", "q"), ("assistant", "Hi!")]


def test_history_is_cut_from_the_oldest_turns_when_the_context_is_full(http: TestClient) -> None:
    # The fake engine's context is 64 characters: six turns overflow it.
    cid = http.post("/v1/conversations", json={}, headers=KEY_A).json()["id"]
    for turn in range(6):
        assert _chat(http, f"t{turn}", conversation=cid, max_tokens=4).status_code == 200
    assert len(_texts(http, cid)) == 12  # every turn is stored, whatever the model saw
    last = _chat(http, "end", conversation=cid, max_tokens=4).json()
    assert last["usage"]["prompt_tokens"] + 4 <= 64


def test_fit_history_drops_whole_turns_and_keeps_instructions() -> None:
    history = [
        ChatMessage(role="system", content="S"),
        ChatMessage(role="user", content="u1"),
        ChatMessage(role="assistant", content="a1"),
        ChatMessage(role="user", content="u2"),
        ChatMessage(role="assistant", content="a2"),
        ChatMessage(role="user", content="u3"),
        ChatMessage(role="assistant", content="a3"),
    ]
    new = [ChatMessage(role="user", content="now")]

    def count(messages: list[ChatMessage]) -> int:
        return len(json.dumps([m.text() for m in messages]))

    everything = count(history + new)
    assert fit_history([], history, new, count, everything) == history + new
    kept = fit_history([], history, new, count, everything - 1)
    assert [m.text() for m in kept] == ["S", "u2", "a2", "u3", "a3", "now"]
    nothing_fits = fit_history([], history, new, count, 0)
    assert [m.text() for m in nothing_fits] == ["S", "now"]


def test_an_unknown_item_type_is_named_in_words(http: TestClient) -> None:
    body = {"items": [{"type": "image", "url": "x"}]}
    error = _error(http.post("/v1/conversations", json=body, headers=KEY_A), 400)
    assert (
        error["message"] == "Invalid value for 'items[0]': type must be message, function_call or function_call_output"
    )
