"""The models a chat service serves, read from a models file: engine settings per model, defaults filled into
requests, the entries CHAT_MODELS picks, and clear refusals (no model, no process)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chat_service.models.catalog import ModelCatalog
from chat_service.settings import ChatSettings
from ortserve_common.model_manifest import ManifestError
from ortserve_common.protocol.chat import ChatCompletionRequest
from ortserve_common.protocol.responses import ResponsesRequest
from pydantic import ValidationError

ENTRIES = [
    {
        "id": "big",
        "aliases": ["b"],
        "kind": "chat",
        "context_length": 2048,
        "path": "big-folder",
        "engine": {"max_batch_size": 2, "threads": 4, "prefix_cache_mb": 0},
        "defaults": {"temperature": 0.2, "top_k": 20, "repetition_penalty": 1.05, "stop": ["END"], "max_tokens": 64},
    },
    {"id": "small", "kind": "chat", "path": "/abs/small"},
    {"id": "runtime-only", "kind": "chat", "context_length": 512, "defaults": {"top_p": 0.5}},
    {"id": "encoder", "kind": "embedding", "path": "encoder"},
]


def _settings(tmp_path: Path, entries: object = ENTRIES, **values: object) -> ChatSettings:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": entries}))
    return ChatSettings(models_file=path, models_dir=tmp_path / "models", max_batch_size=8, **values)


def test_each_entry_gets_its_engine_settings_and_the_rest_the_services(tmp_path: Path) -> None:
    big, small = ModelCatalog(_settings(tmp_path)).startup()  # the chat entries that have a path
    assert (big.id, big.aliases, big.path) == ("big", ("b",), tmp_path / "models/big-folder")
    assert (big.settings.max_batch_size, big.settings.engine_threads, big.settings.prefix_cache_mb) == (2, 4, 0)
    assert big.settings.max_model_len == 2048 and big.max_tokens == 64
    assert (small.path, small.settings.max_batch_size, small.settings.max_model_len) == (Path("/abs/small"), 8, None)
    assert small.defaults == {"temperature": 0.7, "top_p": 1.0} and small.max_tokens == 1024
    assert small.settings.engine_threads is None  # no threads anywhere: the engine takes the usable cores


def test_defaults_fill_what_a_request_leaves_out_and_the_model_id_replaces_an_alias(tmp_path: Path) -> None:
    big = ModelCatalog(_settings(tmp_path)).startup()[0]
    request = ChatCompletionRequest(model="b", messages=[{"role": "user", "content": "Hi"}], temperature=1.0)
    filled = big.fill(request)
    assert filled.model == "big" and filled.temperature == 1.0  # the request's own value wins
    assert (filled.top_p, filled.top_k, filled.repetition_penalty, filled.stop) == (1.0, 20, 1.05, ["END"])
    assert filled.max_tokens is None  # the default max_tokens is applied capped by the context, not as asked for
    response = big.fill(ResponsesRequest(model="b", input="Hi"))
    assert (response.model, response.temperature, response.top_k) == ("big", 0.2, 20)


def test_chat_models_picks_entries_by_id_or_alias(tmp_path: Path) -> None:
    picked = ModelCatalog(_settings(tmp_path, models=["small", "b"])).startup()
    assert [config.id for config in picked] == ["small", "big"]
    for models, message in (
        (["encoder"], "CHAT_MODELS names 'encoder', of kind 'embedding' in models file"),
        (["big", "b"], "CHAT_MODELS names model 'big' twice"),
        (["runtime-only"], "model 'runtime-only' in models file"),
        (["nope"], "does not list (its chat models: big, small, runtime-only)"),
    ):
        with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
            ModelCatalog(_settings(tmp_path, models=models)).startup()
    with pytest.raises(ManifestError, match="has no chat model with a path: nothing to serve"):
        ModelCatalog(_settings(tmp_path, entries=ENTRIES[2:])).startup()


def test_a_runtime_load_takes_the_files_entry_when_it_has_one(tmp_path: Path) -> None:
    catalog = ModelCatalog(_settings(tmp_path))
    known = catalog.for_load("runtime-only", "somewhere")
    assert known.path == tmp_path / "models/somewhere" and known.settings.max_model_len == 512
    assert known.defaults["top_p"] == 0.5
    unknown = catalog.for_load("other", "/abs/other")
    assert unknown.path == Path("/abs/other") and unknown.settings is catalog.settings


def test_one_model_or_a_models_file_not_both_nor_neither(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAT_MODEL_PATH", raising=False)
    monkeypatch.delenv("CHAT_MODELS_FILE", raising=False)
    with pytest.raises(ValidationError, match="set CHAT_MODEL_PATH .* or CHAT_MODELS_FILE .*, not neither"):
        ChatSettings()
    with pytest.raises(ValidationError, match="not both"):
        ChatSettings(model_path=tmp_path, models_file=tmp_path / "models.yaml")
    with pytest.raises(ValidationError, match="CHAT_MODELS picks entries of CHAT_MODELS_FILE, which is not set"):
        ChatSettings(model_path=tmp_path, models="a,b")
    monkeypatch.setenv("CHAT_MODEL_PATH", "")  # empty is unset: compose clears the image's default this way
    monkeypatch.setenv("CHAT_MODELS_FILE", str(tmp_path / "models.yaml"))
    monkeypatch.setenv("CHAT_MODELS", " big, b ")
    settings = ChatSettings()
    assert (settings.model_path, settings.models) == (None, ["big", "b"])


def test_an_empty_chat_engine_threads_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_ENGINE_THREADS", "")  # what compose passes for ${CHAT_ENGINE_THREADS:-}
    assert ChatSettings(model_path=tmp_path).engine_threads is None
    monkeypatch.setenv("CHAT_ENGINE_THREADS", "4")
    assert ChatSettings(model_path=tmp_path).engine_threads == 4
