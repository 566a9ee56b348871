"""Conversations and prompt templates end to end through nginx, with the OpenAI SDK: each API key sees only its own
conversations (the proxy vouches for the key's id, and a client cannot claim another's), templates need the admin
key, and concurrent chats on one conversation all land.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from stack_testing import Stack

CHAT_MODEL = "smollm2-135m-instruct"
CONCURRENT_TURNS = 4


def _new_key(stack: Stack, name: str) -> dict:
    with stack.http() as http:
        created = http.post("/admin/keys", json={"name": name}, headers={"Authorization": f"Bearer {stack.admin_key}"})
    assert created.status_code == 201, created.text
    return created.json()


def test_each_key_sees_only_its_own_conversations(stack: Stack) -> None:
    alice, bob = _new_key(stack, "alice"), _new_key(stack, "bob")
    as_alice, as_bob = stack.openai(alice["key"]), stack.openai(bob["key"])
    conversation = as_alice.conversations.create(items=[{"role": "user", "content": "secret"}])
    assert as_alice.conversations.retrieve(conversation.id).id == conversation.id
    with pytest.raises(openai.NotFoundError):
        as_bob.conversations.retrieve(conversation.id)
    # Claiming alice's key id in the header the proxy sets changes nothing: nginx overwrites it.
    with pytest.raises(openai.NotFoundError):
        as_bob.conversations.items.list(conversation.id, extra_headers={"X-Ortserve-Api-Key-Id": alice["id"]})
    with pytest.raises(openai.NotFoundError) as refused:
        as_bob.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=2,
            extra_body={"conversation": conversation.id},
        )
    assert refused.value.body["param"] == "conversation"  # type: ignore[index]
    listed = as_bob.get("/conversations", cast_to=object)
    assert listed["data"] == []  # type: ignore[index]
    assert as_alice.conversations.delete(conversation.id).deleted


def test_concurrent_chats_on_one_conversation_all_land(stack: Stack) -> None:
    client = stack.openai()
    conversation = client.conversations.create()

    def turn(number: int) -> str:
        reply = client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": f"Question {number}: say a word."}],
            max_tokens=6,
            temperature=0,
            extra_body={"conversation": conversation.id},
        )
        return reply.choices[0].message.content or ""

    with ThreadPoolExecutor(CONCURRENT_TURNS) as pool:
        replies = list(pool.map(turn, range(CONCURRENT_TURNS)))
    items = list(client.conversations.items.list(conversation.id, order="asc"))
    texts = [(item.role, item.content[0].text) for item in items]  # type: ignore[union-attr]
    assert len(texts) == 2 * CONCURRENT_TURNS
    questions = {text: texts[i + 1] for i, (role, text) in enumerate(texts) if role == "user"}
    for number, reply in enumerate(replies):  # each question, followed at once by its own reply
        assert questions[f"Question {number}: say a word."] == ("assistant", reply)


def test_prompt_templates_take_the_admin_key_and_serve_any_key(stack: Stack) -> None:
    template = {"name": "e2e-brief", "system_prompt": "Answer in one word.", "parameters": {"max_tokens": 3}}
    with stack.http() as http:
        refused = http.post("/v1/prompt-templates", json=template, headers={"Authorization": f"Bearer {stack.api_key}"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        admin = {"Authorization": f"Bearer {stack.admin_key}"}
        assert http.post("/v1/prompt-templates", json=template, headers=admin).status_code == 201
        try:
            reply = stack.openai().chat.completions.create(
                model=CHAT_MODEL,
                messages=[{"role": "user", "content": "Capital of France?"}],
                extra_body={"prompt_template": "e2e-brief"},
            )
            assert reply.usage.completion_tokens <= 3  # type: ignore[union-attr]
            assert reply.usage.completion_tokens == 3 or reply.choices[0].finish_reason == "stop"  # type: ignore[union-attr]
        finally:
            assert http.delete("/v1/prompt-templates/e2e-brief", headers=admin).status_code == 200
