"""Conversations and prompt templates on the real model, through the OpenAI SDK: what the model is given is exactly
the history (or the template) spelled out by hand, a full context is cut from its oldest turns, and everything
survives a restart of the service.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from chat_testing import MODEL_ID, ChatServer

CONTEXT = 512
ADMIN_KEY = "test-admin-key"
GREEDY = {"temperature": 0, "max_tokens": 12}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chat-state")


@pytest.fixture(scope="module")
def server(smollm_path: Path, data_dir: Path) -> Iterator[ChatServer]:
    env = {"CHAT_DATA_DIR": str(data_dir), "CHAT_ADMIN_KEY": ADMIN_KEY, "CHAT_MAX_MODEL_LEN": str(CONTEXT)}
    server = ChatServer(smollm_path, **env).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: ChatServer) -> openai.OpenAI:
    return server.client()


def _ask(client: openai.OpenAI, messages: list[dict], **extra: object):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(model=MODEL_ID, messages=messages, **GREEDY, **extra)  # type: ignore[arg-type]


def _turns(client: openai.OpenAI, conversation_id: str) -> list[dict]:
    """Every item, oldest first, as chat messages (the SDK pages through them by itself)."""
    return [
        {"role": item.role, "content": item.content[0].text}  # type: ignore[union-attr]
        for item in client.conversations.items.list(conversation_id, order="asc", limit=2)
    ]


def test_the_model_sees_the_stored_history(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(
        items=[{"role": "system", "content": "You are a terse assistant."}], metadata={"user": "ada"}
    )
    first = _ask(client, [{"role": "user", "content": "My name is Ada."}], extra_body={"conversation": conversation.id})
    second = _ask(
        client, [{"role": "user", "content": "What is my name?"}], extra_body={"conversation": conversation.id}
    )
    history = _turns(client, conversation.id)
    assert history == [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "What is my name?"},
        {"role": "assistant", "content": second.choices[0].message.content},
    ]
    by_hand = _ask(client, history[:4])  # the same turns, spelled out
    assert second.choices[0].message.content == by_hand.choices[0].message.content
    assert second.usage.prompt_tokens == by_hand.usage.prompt_tokens  # type: ignore[union-attr]


def test_a_streamed_reply_is_stored_whole(client: openai.OpenAI) -> None:
    conversation = client.conversations.create()
    stream = client.chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Name a colour."}],
        stream=True,
        extra_body={"conversation": conversation.id},
        **GREEDY,  # type: ignore[arg-type]
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed and _turns(client, conversation.id)[-1] == {"role": "assistant", "content": streamed}


def _admin(server: ChatServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)


def test_a_template_is_its_system_prompt_and_its_parameters(server: ChatServer, client: openai.OpenAI) -> None:
    system = "You are a SQL assistant. Answer with one SQL query."
    with _admin(server) as admin:
        created = admin.post(
            "/v1/prompt-templates",
            json={"name": "sql", "system_prompt": system, "parameters": {"temperature": 0, "max_tokens": 9}},
        )
    assert created.status_code == 201, created.text
    question = [{"role": "user", "content": "All users older than 30."}]
    templated = client.chat.completions.create(model=MODEL_ID, messages=question, extra_body={"prompt_template": "sql"})  # type: ignore[arg-type]
    by_hand = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "system", "content": system}, *question], temperature=0, max_tokens=9
    )
    assert templated.choices[0].message.content == by_hand.choices[0].message.content
    assert templated.usage.prompt_tokens == by_hand.usage.prompt_tokens  # type: ignore[union-attr]
    assert templated.usage.completion_tokens == 9 and templated.choices[0].finish_reason == "length"  # type: ignore[union-attr]


def _prompt_tokens(server: ChatServer, messages: list[dict]) -> int:
    body = {"model": MODEL_ID, "messages": messages}
    return httpx.post(server.base_url + "/tokenize", json=body, timeout=30).json()["count"]


def test_a_full_context_drops_the_oldest_turns(server: ChatServer, client: openai.OpenAI) -> None:
    filler = "The quick brown fox jumps over the lazy dog. " * 6
    conversation = client.conversations.create(items=[{"role": "system", "content": "Keep me."}])
    for turn in range(8):  # about 70 tokens a turn: far more history than a 512-token context holds
        client.conversations.items.create(
            conversation.id,
            items=[
                {"role": "user", "content": f"Turn {turn}. {filler}"},
                {"role": "assistant", "content": f"Noted {turn}."},
            ],
        )
    history = _turns(client, conversation.id)
    new = [{"role": "user", "content": "Which turn came last?"}]
    assert _prompt_tokens(server, history + new) > CONTEXT
    reply = _ask(client, new, extra_body={"conversation": conversation.id})

    # What it should have kept, worked out the slow way: the system message, then the newest whole turns that fit.
    kept: list[dict] = []
    for start in range(len(history) - 2, 0, -2):
        candidate = [history[0], *history[start:], *new]
        if _prompt_tokens(server, candidate) + GREEDY["max_tokens"] > CONTEXT:
            break
        kept = candidate
    assert 2 < len(kept) < len(history)
    by_hand = _ask(client, kept)
    assert reply.usage.prompt_tokens == by_hand.usage.prompt_tokens  # type: ignore[union-attr]
    assert reply.choices[0].message.content == by_hand.choices[0].message.content
    assert len(_turns(client, conversation.id)) == len(history) + 2  # storage keeps every turn


def test_conversations_and_templates_survive_a_restart(smollm_path: Path, tmp_path: Path) -> None:
    env = {"CHAT_DATA_DIR": str(tmp_path), "CHAT_ADMIN_KEY": ADMIN_KEY}
    first = ChatServer(smollm_path, **env).start()
    try:
        conversation = first.client().conversations.create(items=[{"role": "user", "content": "Remember 7."}])
        with _admin(first) as admin:
            assert admin.post("/v1/prompt-templates", json={"name": "sql", "system_prompt": "SQL."}).status_code == 201
    finally:
        first.stop()
    restarted = ChatServer(smollm_path, **env).start()
    try:
        client = restarted.client()
        assert client.conversations.retrieve(conversation.id).id == conversation.id
        assert _turns(client, conversation.id) == [{"role": "user", "content": "Remember 7."}]
        reply = _ask(
            client, [{"role": "user", "content": "Which number?"}], extra_body={"conversation": conversation.id}
        )
        assert reply.choices[0].message.content and len(_turns(client, conversation.id)) == 3
        with _admin(restarted) as admin:
            assert admin.get("/v1/prompt-templates/sql").json()["system_prompt"] == "SQL."
        assert client.conversations.delete(conversation.id).deleted
    finally:
        restarted.stop()
