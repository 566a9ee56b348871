"""The stack under docker compose, scaled (chat x2, embeddings x2), black box through nginx with the OpenAI SDK:
every replica is healthy, registered and scraped by Prometheus, both chat replicas serve, a conversation started on
one replica continues on the other (one SQLite file on the shared chat-data volume), and keys and conversations
survive `docker compose down` and `up` (named volumes).
"""

from __future__ import annotations

from compose_testing import ComposeStack

CHAT_MODEL = "smollm2-135m-instruct"
EMBED_MODEL = "all-minilm-l6-v2"


def _ips(stack: ComposeStack, service: str, port: int) -> set[str]:
    return {f"{stack.ip(row['Name'])}:{port}" for row in stack.containers(service) if row["State"] == "running"}


def test_every_replica_is_healthy_registered_and_scraped(compose_stack: ComposeStack) -> None:
    assert len(compose_stack.healthy("chat")) == 2 and len(compose_stack.healthy("embeddings")) == 2
    compose_stack.wait_for(
        "/v1/models counts two replicas of each scaled model",
        lambda: compose_stack.replicas(CHAT_MODEL) == 2 and compose_stack.replicas(EMBED_MODEL) == 2,
    )

    def scraped() -> bool:
        targets = compose_stack.prometheus('up{job=~"chat|embeddings|models"} == 1')
        found = {(t["metric"]["job"], t["metric"]["instance"]) for t in targets}
        expected = {("chat", a) for a in _ips(compose_stack, "chat", 8000)}
        expected |= {("embeddings", a) for a in _ips(compose_stack, "embeddings", 8001)}
        expected |= {("models", a) for a in _ips(compose_stack, "models", 8002)}
        return found == expected and len(expected) == 5

    compose_stack.wait_for("Prometheus scrapes every replica of every service", scraped)


def test_both_chat_replicas_serve_requests_sent_through_the_proxy(compose_stack: ComposeStack) -> None:
    client = compose_stack.openai()
    for number in range(8):
        reply = client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": f"Say {number}."}], max_tokens=4
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
    query = 'sum by (instance) (ortserve_http_requests_total{job="chat", route="/v1/chat/completions"}) > 0'

    def both_served() -> bool:  # each replica's own request counter, as Prometheus scraped it
        return {s["metric"]["instance"] for s in compose_stack.prometheus(query)} == _ips(compose_stack, "chat", 8000)

    compose_stack.wait_for("both chat replicas counted chat completions", both_served, timeout_s=60)


def test_a_conversation_continues_on_the_other_replica(compose_stack: ComposeStack) -> None:
    client = compose_stack.openai()
    conversation = client.conversations.create(items=[{"role": "user", "content": "My name is Ada."}])
    request_ids: list[str] = []
    upstreams: set[str] = set()
    for turn in range(10):
        raw = client.chat.completions.with_raw_response.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": f"Turn {turn}: say one word."}],
            max_tokens=4,
            temperature=0,
            extra_body={"conversation": conversation.id},
        )
        assert raw.parse().choices[0].message.content is not None
        request_ids.append(raw.headers["x-request-id"])
        if turn >= 1:  # nginx logs a request once it is answered: look up where each turn went
            logged = lambda: set(request_ids) <= set(compose_stack.upstreams())  # noqa: E731
            compose_stack.wait_for("the proxy logged every turn", logged)
            upstreams = {compose_stack.upstreams()[rid] for rid in request_ids}
            if len(upstreams) == 2:
                break
    assert upstreams == _ips(compose_stack, "chat", 8000), upstreams  # the turns went to both replicas
    items = list(client.conversations.items.list(conversation.id, order="asc"))
    texts = [item.content[0].text for item in items]  # type: ignore[union-attr]
    # Every turn, wherever it ran, read and extended the one history: first message, then question/answer pairs.
    assert texts[0] == "My name is Ada." and len(texts) == 1 + 2 * len(request_ids)
    assert texts[1::2] == [f"Turn {turn}: say one word." for turn in range(len(request_ids))]


def test_keys_and_conversations_survive_down_and_up(compose_stack: ComposeStack) -> None:
    with compose_stack.http() as http:
        created = http.post(
            "/admin/keys", json={"name": "survivor"}, headers={"Authorization": f"Bearer {compose_stack.admin_key}"}
        )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    conversation = compose_stack.openai(key).conversations.create(items=[{"role": "user", "content": "Remember me."}])

    compose_stack.down(volumes=False)
    assert compose_stack.containers("") == []  # `down` returned with every container stopped and removed
    compose_stack.up()

    client = compose_stack.openai(key)  # a key made through the admin API, kept in the keys-data volume
    items = list(client.conversations.items.list(conversation.id))
    assert [item.content[0].text for item in items] == ["Remember me."]  # type: ignore[union-attr]
