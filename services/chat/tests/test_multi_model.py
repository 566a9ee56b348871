"""Several models in one chat service from a models file (the manifest's schema): each with its own slots, context
and sampler defaults, applied to requests that leave a sampler out; aliases served under the model's id; a bad file
stops the start with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from chat_testing import MODELS_DIR, ChatServer

SMOLLM_ID = "smollm2-135m-instruct"
PHI3_ID = "phi3-tiny"
POEM = [{"role": "user", "content": "Write a long poem about the sea."}]
MODELS = [
    {
        "id": SMOLLM_ID,
        "aliases": ["smol"],
        "kind": "chat",
        "context_length": 1024,
        "path": "smollm2-135m-instruct",
        "engine": {"max_batch_size": 2, "threads": 1, "prefix_cache_mb": 0},
        "defaults": {"temperature": 0, "max_tokens": 12},
    },
    {
        # Random weights: at temperature 1.5 its next token is all but uniform over 49k, unless top_k 1 makes it greedy.
        "id": PHI3_ID,
        "kind": "chat",
        "context_length": 512,
        "path": "phi3-tiny",
        "engine": {"max_batch_size": 3},
        "defaults": {"temperature": 1.5, "top_k": 1, "max_tokens": 8},
    },
    # No path: not served at start, but configured for a load at runtime.
    {"id": "phi3-runtime", "aliases": ["later"], "kind": "chat", "context_length": 256},
]
ADMIN = "test-admin-key"


def _models_file(folder: Path, models: object) -> Path:
    path = folder / "models.yaml"
    path.write_text(yaml.safe_dump({"models": models}))
    return path


@pytest.fixture(scope="module")
def server(smollm_path: Path, phi3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    models_file = _models_file(tmp_path_factory.mktemp("models-file"), MODELS)
    server = ChatServer(
        smollm_path,
        CHAT_MODEL_PATH="",
        CHAT_MODELS_FILE=str(models_file),
        CHAT_MODELS_DIR=str(MODELS_DIR),
        CHAT_ADMIN_KEY=ADMIN,
        # n=2 choices and a lone request must take the same kernels for their greedy texts to be equal on every CPU.
        CHAT_BATCH_INVARIANT="true",
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: ChatServer) -> openai.OpenAI:
    return server.client()


def test_each_model_has_its_own_slots_and_context(server: ChatServer) -> None:
    # The engines' own words on what they allocated: KV slots × positions per model.
    logs = server.logs()
    assert f"{MODELS_DIR / 'smollm2-135m-instruct'}: 2 slots of up to 1024 positions" in logs
    assert f"{MODELS_DIR / 'phi3-tiny'}: 3 slots of up to 512 positions" in logs
    for model, context in ((SMOLLM_ID, 1024), (PHI3_ID, 512)):
        answer = httpx.post(server.base_url + "/tokenize", json={"model": model, "prompt": "Hi"}).json()
        assert answer["max_model_len"] == context
    listed = httpx.get(server.base_url + "/v1/models").json()["data"]
    assert [card["id"] for card in listed] == [SMOLLM_ID, PHI3_ID]


def test_a_request_that_leaves_samplers_out_gets_the_models_defaults(client: openai.OpenAI, rows_invariant) -> None:
    # SmolLM2's defaults: greedy, 12 tokens. Two choices sampled at the service's 0.7 would part within 12 tokens.
    default = client.chat.completions.create(model=SMOLLM_ID, messages=POEM, n=2)
    greedy_text = (
        client.chat.completions.create(model=SMOLLM_ID, messages=POEM, temperature=0, max_tokens=12)
        .choices[0]
        .message.content
    )
    first, second = (choice.message.content for choice in default.choices)
    if rows_invariant:  # two rows and a lone one (beside a scratch row) take the same kernels: exact
        assert first == second == greedy_text
    assert default.usage.completion_tokens == 2 * 12 and default.choices[0].finish_reason == "length"
    # The request's own value wins over the default.
    short = client.chat.completions.create(model=SMOLLM_ID, messages=POEM, max_tokens=3)
    assert short.usage.completion_tokens == 3

    # phi3-tiny's defaults: temperature 1.5 with top_k 1, which is greedy; turning top_k off leaves the noise.
    default = client.chat.completions.create(model=PHI3_ID, messages=POEM, n=2)
    greedy = client.chat.completions.create(model=PHI3_ID, messages=POEM, temperature=0)
    if rows_invariant:
        assert default.choices[0].message.content == default.choices[1].message.content
        assert default.choices[0].message.content == greedy.choices[0].message.content
    noisy = client.chat.completions.create(model=PHI3_ID, messages=POEM, n=2, extra_body={"top_k": 0})
    assert noisy.choices[0].message.content != noisy.choices[1].message.content

    # Completions and responses take the same defaults.
    completion = client.completions.create(model=SMOLLM_ID, prompt="The sea is")
    greedy_completion = client.completions.create(model=SMOLLM_ID, prompt="The sea is", temperature=0, max_tokens=12)
    assert completion.choices[0].text == greedy_completion.choices[0].text
    response = client.responses.create(model=SMOLLM_ID, input=POEM[0]["content"])
    assert response.temperature == 0 and response.usage.output_tokens == 12
    if rows_invariant:
        assert response.output_text == greedy_text  # the same messages as the chat request


def test_an_alias_is_served_under_the_models_id(server: ChatServer, client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="smol", messages=POEM, max_tokens=4)
    assert reply.model == SMOLLM_ID
    chunks = list(client.chat.completions.create(model="smol", messages=POEM, max_tokens=4, stream=True))
    assert {chunk.model for chunk in chunks} == {SMOLLM_ID}
    assert client.completions.create(model="smol", prompt="Hi", max_tokens=2).model == SMOLLM_ID
    assert client.responses.create(model="smol", input="Hi", max_output_tokens=16).model == SMOLLM_ID
    assert httpx.get(server.base_url + "/v1/models/smol").json()["id"] == SMOLLM_ID
    missing = httpx.post(server.base_url + "/v1/completions", json={"model": "smoll", "prompt": "Hi"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_a_runtime_load_takes_its_models_file_entry(server: ChatServer) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    taken = httpx.post(server.base_url + "/admin/models/load", json={"id": "smol", "path": "phi3-tiny"}, headers=admin)
    # An alias names its entry's model, which is loaded already.
    assert taken.status_code == 409
    assert taken.json()["error"]["message"] == f"Model '{SMOLLM_ID}' is already loaded."
    # A relative path is taken under CHAT_MODELS_DIR; the entry gives the context (and the alias).
    loaded = httpx.post(
        server.base_url + "/admin/models/load", json={"id": "phi3-runtime", "path": "phi3-tiny"}, headers=admin
    )
    assert loaded.status_code == 200, loaded.text
    try:
        answer = httpx.post(server.base_url + "/tokenize", json={"model": "later", "prompt": "Hi"}).json()
        assert answer["max_model_len"] == 256
    finally:
        httpx.post(server.base_url + "/admin/models/unload", json={"id": "later"}, headers=admin, timeout=60)
    assert [card["id"] for card in httpx.get(server.base_url + "/v1/models").json()["data"]] == [SMOLLM_ID, PHI3_ID]


def _start(**env: str) -> list[str]:
    """The ERROR lines of a chat service that should not start."""
    environment = {**os.environ, "CHAT_PORT": "1", "CHAT_MODELS_DIR": str(MODELS_DIR), **env}
    result = subprocess.run(
        [sys.executable, "-m", "chat_service"], env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return [line["message"] for line in lines if line["level"] == "ERROR"]


@pytest.mark.model  # starts service processes of its own
def test_a_bad_models_file_stops_the_start_with_one_clear_line(tmp_path: Path) -> None:
    typo = [{**MODELS[0], "engine": {"max_batch_sise": 2}}]
    errors = _start(CHAT_MODEL_PATH="", CHAT_MODELS_FILE=str(_models_file(tmp_path, typo)))
    assert len(errors) == 1 and str(tmp_path / "models.yaml") in errors[0]
    assert "models[0] (id 'smollm2-135m-instruct').engine.max_batch_sise: Extra inputs" in errors[0]

    errors = _start(CHAT_MODEL_PATH="", CHAT_MODELS_FILE=str(_models_file(tmp_path, MODELS)), CHAT_MODELS="qwen")
    assert errors == [
        f"cannot start: CHAT_MODELS names 'qwen', which models file {tmp_path / 'models.yaml'} does not list "
        f"(its chat models: {SMOLLM_ID}, {PHI3_ID}, phi3-runtime)"
    ]

    errors = _start(CHAT_MODEL_PATH=str(MODELS_DIR / "phi3-tiny"), CHAT_MODELS_FILE=str(tmp_path / "models.yaml"))
    assert len(errors) == 1 and "set CHAT_MODEL_PATH (one model) or CHAT_MODELS_FILE" in errors[0]
