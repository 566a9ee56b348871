"""End to end through nginx over TLS with the OpenAI SDK: auth, limits, CORS, errors, keys, registry, runtime loads."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from chat_service.settings import ChatSettings
from ortserve_common.models_dir import models_dir
from stack_testing import Stack

CHAT_MODEL = "smollm2-135m-instruct"
QWEN = "qwen2.5-coder-0.5b-instruct"
EMBED_MODEL = "all-minilm-l6-v2"
MODELS_DIR = models_dir()


def _json_error(response: httpx.Response, status: int, type_: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == type_
    return error


def test_chat_stream_and_embeddings_through_the_proxy(stack: Stack) -> None:
    client = stack.openai()
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}], temperature=0
    )
    assert "Paris" in reply.choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=8, stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason
    vectors = client.embeddings.create(model=EMBED_MODEL, input=["hello", "world"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 384
    completion = client.completions.create(model=CHAT_MODEL, prompt="The sky is", max_tokens=4, temperature=0)
    assert completion.usage.completion_tokens == 4


def test_the_default_embedding_models_through_the_proxy(stack: Stack) -> None:
    """The default set: MiniLM, multilingual-e5-small (its prefixes from input_type) and the chat model's own id
    (its hidden states); no random-weight reranker, so /v1/rerank ranks with a real bi-encoder."""
    client = stack.openai()
    listed = {model.id for model in client.models.list()}
    assert {"all-minilm-l6-v2", "multilingual-e5-small", CHAT_MODEL} <= listed and "rerank-tiny-random" not in listed
    passages = ["琵琶湖は日本最大の湖です。", "富士山は日本で最も高い山です。"]
    query = client.embeddings.create(
        model="multilingual-e5-small", input="日本で一番高い山は?", extra_body={"input_type": "query"}
    )
    docs = client.embeddings.create(
        model="multilingual-e5-small", input=passages, extra_body={"input_type": "document"}
    )
    scores = [sum(a * b for a, b in zip(query.data[0].embedding, d.embedding, strict=True)) for d in docs.data]
    assert scores[1] > scores[0] and len(query.data[0].embedding) == 384
    with stack.http() as http:
        ranked = http.post(
            "/v1/rerank",
            headers={"Authorization": f"Bearer {stack.api_key}"},
            json={"model": "multilingual-e5-small", "query": "日本で一番高い山は?", "documents": passages},
        )
    assert ranked.status_code == 200 and ranked.json()["results"][0]["index"] == 1, ranked.text
    hidden = client.embeddings.create(model=CHAT_MODEL, input="hello")
    assert len(hidden.data[0].embedding) == 576  # SmolLM2's hidden size: the chat model's own states


def test_a_repeated_system_prompt_is_cached_for_its_own_api_key_only(stack: Stack) -> None:
    system = "You are the archivist of a small museum. Answer in one sentence and cite the room number. " * 5

    def cached(client: openai.OpenAI, question: str) -> tuple[int, int]:
        reply = client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
            max_tokens=4,
            temperature=0,
        )
        return reply.usage.prompt_tokens_details.cached_tokens, reply.usage.prompt_tokens

    with stack.http() as http:
        created = http.post(
            "/admin/keys", json={"name": "cache-scope"}, headers={"Authorization": f"Bearer {stack.admin_key}"}
        )
        assert created.status_code == 201, created.text
    owner, other = stack.openai(), stack.openai(api_key=created.json()["key"])
    cached(owner, "Where are the coins?")
    hit, prompt_tokens = cached(owner, "Where are the maps?")
    assert 64 <= hit < prompt_tokens and hit % ChatSettings.model_fields["prefix_block_tokens"].default == 0
    # Another key sending the very same system prompt learns nothing from the first key's cache...
    assert cached(other, "Where are the maps?")[0] == 0
    # ...and has a cache of its own.
    assert cached(other, "Where are the vases?")[0] == hit


def test_http2_and_request_ids(stack: Stack) -> None:
    with stack.http(http2=True) as http:
        response = http.get("/v1/models", headers={"Authorization": f"Bearer {stack.api_key}"})
    assert response.http_version == "HTTP/2"
    assert len(response.headers["x-request-id"]) == 32
    trace = "0af7651916cd43dd8448eb211c80319c"
    with stack.http() as http:
        response = http.get(
            "/v1/models",
            headers={"Authorization": f"Bearer {stack.api_key}", "traceparent": f"00-{trace}-b7ad6b7169203331-01"},
        )
    assert response.headers["x-request-id"] == trace


def test_missing_wrong_and_wrong_case_keys_are_401(stack: Stack) -> None:
    with stack.http() as http:
        _json_error(http.get("/v1/models"), 401, "authentication_error")
        _json_error(http.get("/v1/models", headers={"Authorization": "Bearer sk-nope"}), 401, "authentication_error")
        swapped = stack.api_key.swapcase()
        _json_error(http.get("/v1/models", headers={"Authorization": f"Bearer {swapped}"}), 401, "authentication_error")
        assert http.get("/health").status_code == 200  # public
    with pytest.raises(openai.AuthenticationError):
        stack.openai(api_key=stack.api_key.upper()).models.list()


def test_oversized_body_is_413_json(stack: Stack) -> None:
    body = b'{"model": "x", "input": "' + b"a" * (9 * 1024 * 1024) + b'"}'
    with stack.http() as http:  # HTTP/1.1: over HTTP/2 an early 413 can surface as a client read timeout
        response = http.post(
            "/v1/embeddings",
            content=body,
            headers={"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"},
        )
    _json_error(response, 413, "invalid_request_error")


def test_cors_preflight_allowed_and_refused(stack: Stack) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with stack.http() as http:
        allowed = http.options("/v1/chat/completions", headers={"Origin": "http://localhost:3000", **preflight})
        refused = http.options("/v1/chat/completions", headers={"Origin": "https://evil.example", **preflight})
        actual = http.get(
            "/v1/models", headers={"Origin": "http://localhost:3000", "Authorization": f"Bearer {stack.api_key}"}
        )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 204 and "access-control-allow-origin" not in refused.headers
    assert actual.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_tokenize_round_trip_through_the_proxy(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    with stack.http() as http:
        tokens = http.post("/tokenize", json={"model": CHAT_MODEL, "prompt": "Hello world"}, headers=auth)
        assert tokens.status_code == 200, tokens.text
        ids = tokens.json()["tokens"]
        text = http.post("/detokenize", json={"model": CHAT_MODEL, "tokens": ids}, headers=auth)
        assert text.json()["prompt"] == "Hello world"
        assert http.post("/tokenize", json={"model": CHAT_MODEL, "prompt": "x"}).status_code == 401


def test_unknown_path_is_json_404(stack: Stack) -> None:
    with stack.http() as http:
        _json_error(http.get("/nope"), 404, "invalid_request_error")


def test_key_lifecycle_create_use_revoke(stack: Stack) -> None:
    admin = {"Authorization": f"Bearer {stack.admin_key}"}
    with stack.http() as http:
        created = http.post("/admin/keys", json={"name": "e2e"}, headers=admin)
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], created.json()["id"]
        assert stack.openai(api_key=key).models.list().data
        listed = http.get("/admin/keys", headers=admin).json()["data"]
        assert key_id in [k["id"] for k in listed] and key not in str(listed)
        assert http.delete(f"/admin/keys/{key_id}", headers=admin).status_code == 200
        revoked_at = time.monotonic()

        def refused() -> bool:
            return http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 401

        stack.wait_for(refused, timeout_s=8, what="revocation")
    assert time.monotonic() - revoked_at <= 7  # the proxy's auth cache is 5 s


def test_admin_api_refuses_a_normal_key(stack: Stack) -> None:
    with stack.http() as http:
        response = http.get("/admin/keys", headers={"Authorization": f"Bearer {stack.api_key}"})
    assert response.status_code in (401, 403) and response.json()["error"]["type"] in (
        "authentication_error",
        "permission_error",
    )


def _model_ids(stack: Stack) -> set[str]:
    return {m.id for m in stack.openai().models.list().data}


def test_stopped_service_gives_json_502_and_registry_follows(stack: Stack) -> None:
    assert EMBED_MODEL in _model_ids(stack)
    stack.ctl("stop", "embeddings")
    try:
        with stack.http() as http:
            response = http.post(
                "/v1/embeddings",
                json={"model": EMBED_MODEL, "input": "x"},
                headers={"Authorization": f"Bearer {stack.api_key}"},
            )
        error = _json_error(response, 502, "server_error")
        assert error["code"] == "upstream_unavailable" and response.headers["retry-after"]
        stack.wait_for(lambda: EMBED_MODEL not in _model_ids(stack), timeout_s=20, what="registry marking it down")
    finally:
        stack.ctl("start", "embeddings")
    stack.wait_for(lambda: EMBED_MODEL in _model_ids(stack), timeout_s=60, what="registry marking it up")


def test_both_chat_models_are_listed_and_an_alias_is_served(stack: Stack) -> None:
    """The default stack serves SmolLM2 and Qwen2.5-Coder-0.5B in one chat service, as the manifest describes them."""
    cards = {card.id: card for card in stack.openai().models.list().data}
    assert cards[CHAT_MODEL].kind == cards[QWEN].kind == "chat"
    assert cards[CHAT_MODEL].replicas == cards[QWEN].replicas == 1  # the stack's one chat service
    qwen = cards[QWEN]
    assert (qwen.aliases, qwen.context_length, qwen.defaults["top_k"]) == (["qwen2.5-coder"], 4096, 20)
    reply = stack.openai().chat.completions.create(
        model="qwen2.5-coder", messages=[{"role": "user", "content": "Say hi."}], max_tokens=4, temperature=0
    )
    assert reply.model == QWEN and reply.usage.completion_tokens >= 1


def test_qwen_answers_calls_a_tool_and_follows_a_schema_through_the_proxy(stack: Stack) -> None:
    """The issue's "done when", with the SDK through nginx: a sensible answer, a tool call it chooses by itself, and
    a json_schema reply from the real Qwen2.5-Coder-0.5B, greedy."""
    client = stack.openai()
    greedy = {"model": QWEN, "temperature": 0, "max_tokens": 96}
    capital = client.chat.completions.create(
        messages=[{"role": "user", "content": "What is the capital of Japan? Answer in one sentence."}], **greedy
    )
    assert "Tokyo" in capital.choices[0].message.content
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    ask = [{"role": "user", "content": "What is the weather like in Paris today?"}]
    called = client.chat.completions.create(messages=ask, tools=[weather], tool_choice="auto", **greedy).choices[0]
    assert called.finish_reason == "tool_calls", called.message.content
    [call] = called.message.tool_calls
    assert call.function.name == "get_weather" and "paris" in call.function.arguments.lower()
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    structured = client.chat.completions.create(
        messages=[{"role": "user", "content": "Name the capital of France and its country as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": schema, "strict": True}},
        **greedy,
    )
    value = json.loads(structured.choices[0].message.content)
    assert set(value) == {"city", "country"} and "Paris" in value["city"]


def test_loading_a_second_chat_model_at_runtime(stack: Stack) -> None:
    admin = {"Authorization": f"Bearer {stack.admin_key}"}
    body = {"id": "phi3-tiny", "path": str(MODELS_DIR / "phi3-tiny"), "service": "chat"}
    with stack.http() as http:
        response = http.post("/admin/models/load", json=body, headers=admin)
    assert response.status_code == 200, response.text
    stack.wait_for(lambda: "phi3-tiny" in _model_ids(stack), timeout_s=15, what="the new model in /v1/models")
    reply = stack.openai().chat.completions.create(
        model="phi3-tiny", messages=[{"role": "user", "content": "Hello"}], max_tokens=4, temperature=0
    )
    assert reply.usage.completion_tokens >= 1
    assert CHAT_MODEL in _model_ids(stack)  # the first model still served beside it
    with stack.http() as http:
        assert http.post("/admin/models/unload", json={"id": "phi3-tiny"}, headers=admin).status_code == 200
    stack.wait_for(lambda: "phi3-tiny" not in _model_ids(stack), timeout_s=15, what="the unloaded model leaving")
