"""The conversation, stored-response and prompt-template store, on SQLite and on a real PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from chat_service.conversations.store.conversations import ConversationStore, UnknownCursor
from chat_service.conversations.store.database import conversation_items, metadata, open_database
from chat_service.conversations.store.responses import ResponseRecord, ResponseStore
from chat_service.conversations.store.templates import PromptTemplateStore, TemplateExists
from sqlalchemy import Engine, select

APPENDERS = 4
APPENDS_EACH = 15


def _message(role: str, text: str) -> dict:
    return {"type": "message", "role": role, "status": "completed", "content": [{"type": "input_text", "text": text}]}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.model)])  # a real server
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str | None]]:
    """(data_dir, database_url) for a fresh, empty store on each backend."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    yield tmp_path / "data", url
    if url is not None:
        engine = open_database(tmp_path, url)
        metadata.drop_all(engine)
        engine.dispose()


@pytest.fixture
def engine(database: tuple[Path, str | None]) -> Iterator[Engine]:
    engine = open_database(*database)
    yield engine
    engine.dispose()


def test_create_get_update_delete(engine: Engine) -> None:
    store = ConversationStore(engine)
    record = store.create("key-a", {"topic": "x"}, [_message("user", "hi")])
    assert record.id.startswith("conv_") and store.get("key-a", record.id) == record
    updated = store.update_metadata("key-a", record.id, {"topic": "y"})
    assert updated is not None and updated.metadata == {"topic": "y"}
    page = store.items("key-a", record.id)
    assert page is not None and [item["content"][0]["text"] for item in page.rows] == ["hi"]
    assert store.delete("key-a", record.id)
    assert store.get("key-a", record.id) is None and not store.delete("key-a", record.id)
    with engine.begin() as conn:  # the items went with it
        assert conn.execute(select(conversation_items)).all() == []


def test_owners_see_only_their_own(engine: Engine) -> None:
    store = ConversationStore(engine)
    mine = store.create("key-a", {}, [])
    assert store.get("key-b", mine.id) is None
    assert store.append("key-b", mine.id, [_message("user", "sneak")]) is None
    assert store.items("key-b", mine.id) is None and not store.delete("key-b", mine.id)
    assert store.page("key-b", None, 10, "desc").rows == []
    assert [r.id for r in store.page("key-a", None, 10, "desc").rows] == [mine.id]


def test_pages_walk_every_conversation_once_in_order(engine: Engine) -> None:
    store = ConversationStore(engine)
    made = [store.create("key-a", {"n": str(i)}, []).id for i in range(7)]
    for order, expected in (("asc", made), ("desc", made[::-1])):
        seen, after = [], None
        while True:
            page = store.page("key-a", after, 3, order)
            seen += [r.id for r in page.rows]
            if not page.has_more:
                break
            after = page.rows[-1].id
        assert seen == expected
    with pytest.raises(UnknownCursor):
        store.page("key-a", "conv_unknown", 3, "asc")


def test_item_pages_and_single_items(engine: Engine) -> None:
    store = ConversationStore(engine)
    conversation = store.create("key-a", {}, [_message("user", str(i)) for i in range(5)])
    first = store.items("key-a", conversation.id, None, 2, "asc")
    assert first is not None and first.has_more and [i["content"][0]["text"] for i in first.rows] == ["0", "1"]
    rest = store.items("key-a", conversation.id, first.rows[-1]["id"], 10, "asc")
    assert rest is not None and not rest.has_more and [i["content"][0]["text"] for i in rest.rows] == ["2", "3", "4"]
    newest = store.items("key-a", conversation.id, None, 1, "desc")
    assert newest is not None and newest.rows[0]["content"][0]["text"] == "4"
    item_id = rest.rows[0]["id"]
    assert store.item("key-a", conversation.id, item_id) == rest.rows[0]
    assert store.delete_item("key-a", conversation.id, item_id)
    assert store.item("key-a", conversation.id, item_id) is None


def _append_turns(data_dir: Path, url: str | None, conversation_id: str, worker: int) -> None:
    """One process of its own, with its own connections, as another chat instance would be."""
    engine = open_database(data_dir, url)
    store = ConversationStore(engine)
    for turn in range(APPENDS_EACH):
        tag = f"{worker}-{turn}"
        assert store.append("key-a", conversation_id, [_message("user", f"q{tag}"), _message("assistant", f"a{tag}")])
    engine.dispose()


def test_concurrent_appends_from_several_processes_lose_nothing(
    engine: Engine, database: tuple[Path, str | None]
) -> None:
    store = ConversationStore(engine)
    conversation = store.create("key-a", {}, [])
    with ProcessPoolExecutor(APPENDERS) as pool:
        for done in [pool.submit(_append_turns, *database, conversation.id, w) for w in range(APPENDERS)]:
            done.result()
    page = store.items("key-a", conversation.id)
    assert page is not None
    texts = [item["content"][0]["text"] for item in page.rows]
    assert len(texts) == 2 * APPENDERS * APPENDS_EACH
    expected = {f"{w}-{t}" for w in range(APPENDERS) for t in range(APPENDS_EACH)}
    assert {t[1:] for t in texts[0::2]} == expected  # every question, once
    assert all(q[0] == "q" and a == "a" + q[1:] for q, a in zip(texts[0::2], texts[1::2], strict=True))  # in pairs
    for worker in range(APPENDERS):  # each process's turns in the order it made them
        own = [t for t in texts[0::2] if t.startswith(f"q{worker}-")]
        assert own == [f"q{worker}-{t}" for t in range(APPENDS_EACH)]


def test_everything_survives_a_restart(database: tuple[Path, str | None]) -> None:
    engine = open_database(*database)
    conversation = ConversationStore(engine).create("key-a", {"k": "v"}, [_message("user", "remember me")])
    PromptTemplateStore(engine).create("sql", "SQL helper", "You write SQL.", {"temperature": 0.0})
    engine.dispose()

    reopened = open_database(*database)
    try:
        page = ConversationStore(reopened).items("key-a", conversation.id)
        assert page is not None and page.rows[0]["content"][0]["text"] == "remember me"
        template = PromptTemplateStore(reopened).get("sql")
        assert template is not None and template.parameters == {"temperature": 0.0}
    finally:
        reopened.dispose()


def test_prompt_templates(engine: Engine) -> None:
    store = PromptTemplateStore(engine)
    created = store.create("code", None, "You write code.", {"max_tokens": 64})
    with pytest.raises(TemplateExists):
        store.create("code", None, "again", {})
    store.create("alpha", "first", "A.", {})
    assert [t.name for t in store.all()] == ["alpha", "code"]
    replaced = store.replace("code", "now described", "You write Python.", {})
    assert replaced is not None and replaced.system_prompt == "You write Python." and replaced.parameters == {}
    assert replaced.created_at == created.created_at
    assert store.replace("missing", None, "x", {}) is None
    assert store.delete("code") and not store.delete("code") and store.get("code") is None
    assert json.dumps(store.get("alpha").parameters) == "{}"  # type: ignore[union-attr]


def test_stored_responses_belong_to_their_owner(engine: Engine) -> None:
    store = ResponseStore(engine)
    body = {"id": "resp_1", "created_at": 1, "previous_response_id": None, "output": []}
    inputs = [{"id": "msg_1", **_message("user", "hi")}]
    store.put("alice", ResponseRecord("resp_1", body, inputs, inputs))
    assert store.get("bob", "resp_1") is None
    assert store.get("alice", "resp_1") == ResponseRecord("resp_1", body, inputs, inputs)
    assert not store.delete("bob", "resp_1")
    assert store.delete("alice", "resp_1") and store.get("alice", "resp_1") is None
