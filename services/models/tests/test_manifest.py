"""The manifest: the bundled one, the accepted formats, and clear refusals of bad ones (also at process start)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from models_service.settings import ModelsSettings
from models_testing import BUNDLED_MANIFEST, ModelsServer, registration, run_until_exit
from ortserve_common.model_manifest import ManifestError, load_manifest, parse_manifest


def test_bundled_manifest_describes_its_models() -> None:
    manifest = load_manifest(BUNDLED_MANIFEST)
    by_id = {entry.id: entry for entry in manifest.models}
    assert list(by_id) == [
        "smollm2-135m-instruct",
        "qwen2.5-coder-0.5b-instruct",
        "all-minilm-l6-v2",
        "multilingual-e5-small",
        "rerank-tiny-random",
        "phi-3.5-mini",
    ]
    assert (by_id["smollm2-135m-instruct"].kind, by_id["smollm2-135m-instruct"].service) == ("chat", "chat")
    assert by_id["smollm2-135m-instruct"].context_length == 8192
    # The chat models the default stack serves: a folder each, Qwen with its own slots, context and samplers.
    qwen = by_id["qwen2.5-coder-0.5b-instruct"]
    assert [e.id for e in manifest.models if e.path] == ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"]
    assert qwen.engine is not None and (qwen.engine.max_batch_size, qwen.context_length) == (8, 4096)
    assert qwen.defaults_dict() == {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}
    assert (by_id["all-minilm-l6-v2"].kind, by_id["all-minilm-l6-v2"].service) == ("embedding", "embeddings")
    assert (by_id["rerank-tiny-random"].kind, by_id["rerank-tiny-random"].service) == ("rerank", "embeddings")
    e5 = by_id["multilingual-e5-small"]
    assert (e5.kind, e5.service, e5.context_length) == ("embedding", "embeddings", 512)
    phi = by_id["phi-3.5-mini"]
    assert (phi.kind, phi.service, phi.context_length, phi.aliases) == ("chat", "chat", 131072, ["phi3.5"])
    assert phi.defaults_dict() == {"temperature": 0.7, "top_p": 1.0}
    assert manifest.entry("phi3.5") is phi
    assert all(isinstance(entry.created, int) for entry in manifest.models)


def test_settings_default_to_the_bundled_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELS_MANIFEST", raising=False)
    assert ModelsSettings().manifest == BUNDLED_MANIFEST
    monkeypatch.setenv("MODELS_MANIFEST", "")
    assert ModelsSettings().manifest is None
    assert load_manifest(None).models == []


def test_json_and_bare_list_forms(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps([{"id": "m1", "kind": "rerank"}]))
    manifest = load_manifest(path)
    entry = manifest.models[0]
    assert (entry.id, entry.service, entry.owned_by, entry.aliases, entry.defaults_dict()) == (
        "m1",
        "embeddings",
        "ortserve",
        [],
        {},
    )
    assert entry.created is not None and entry.created > 1_600_000_000


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([{"id": "a", "kind": "chat"}, {"id": "a", "kind": "chat"}], "name 'a' of model 'a' is already used by model"),
        (
            [{"id": "a", "kind": "chat"}, {"id": "b", "kind": "chat", "aliases": ["a"]}],
            "name 'a' of model 'b' is already used by model 'a'",
        ),
        ([{"id": "a", "kind": "vision"}], "models[0] (id 'a').kind"),
        ([{"id": "e", "kind": "embedding", "service": "chat"}], "kind 'embedding' is served by 'embeddings'"),
        ([{"id": "a", "kind": "chat", "context_lenght": 10}], "models[0] (id 'a').context_lenght: Extra inputs"),
        ([{"id": "a", "kind": "chat", "defaults": {"temperature": 3}}], "models[0] (id 'a').defaults.temperature"),
        ([{"id": "a", "kind": "chat", "defaults": {"temprature": 1}}], "defaults.temprature: Extra inputs"),
        ([{"id": "a", "kind": "chat", "context_length": 0}], "context_length: Input should be greater than"),
        ([{"id": "a", "kind": "chat", "defaults": {"min_p": 2}}], "models[0] (id 'a').defaults.min_p: Input should"),
        ([{"id": "a", "kind": "chat", "engine": {"slots": 2}}], "models[0] (id 'a').engine.slots: Extra inputs"),
        ([{"id": "e", "kind": "embedding", "engine": {"threads": 1}}], "engine settings are for chat models"),
        ([{"kind": "chat"}], "models[0].id: Field required"),
        ({"model": []}, "model: Extra inputs"),
        ("just text", "top level"),
    ],
)
def test_invalid_manifests_are_refused_with_the_entry_named(data: Any, expected: str) -> None:
    with pytest.raises(ManifestError) as raised:
        parse_manifest(data, "test.yaml")
    assert str(raised.value).startswith("invalid manifest test.yaml: ")
    assert expected in str(raised.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read manifest .*missing.yaml"):
        load_manifest(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("models:\n  - id: a\n    kind: [chat\n")
    with pytest.raises(ManifestError, match="is not valid YAML"):
        load_manifest(broken)
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"models": [}')
    with pytest.raises(ManifestError, match="is not valid JSON"):
        load_manifest(broken_json)


@pytest.mark.model  # starts a service process of its own
def test_bad_manifest_stops_the_process_with_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - id: a\n    kind: chat\n    service: embeddings\n")
    result = run_until_exit(tmp_path, MODELS_MANIFEST=str(bad))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if '"level": "ERROR"' in line]
    assert len(errors) == 1, result.stderr
    assert "cannot start: invalid manifest" in errors[0] and str(bad) in errors[0]
    assert "kind 'chat' is served by 'chat', not 'embeddings'" in errors[0]

    missing = run_until_exit(tmp_path, MODELS_MANIFEST=str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read manifest" in missing.stderr


@pytest.mark.model  # starts a service process of its own
def test_bad_settings_stop_the_process(tmp_path: Path) -> None:
    result = run_until_exit(tmp_path, MODELS_PORT="not-a-port")
    assert result.returncode == 2 and "invalid MODELS_* settings" in result.stderr


@pytest.mark.model  # starts a service process of its own
def test_without_a_manifest_registered_models_are_still_listed(tmp_path: Path) -> None:
    server = ModelsServer(tmp_path, MODELS_MANIFEST="").start()
    try:
        with server.http() as http:
            assert http.get("/v1/models").json() == {"object": "list", "data": []}
            body = registration("http://127.0.0.1:1", [{"id": "solo", "kind": "embedding", "context_length": 128}])
            assert http.post("/internal/instances", json=body).status_code == 200
            card = http.get("/v1/models/solo").json()
        assert card["kind"] == "embedding" and card["context_length"] == 128 and card["service"] == "chat"
    finally:
        server.stop()
