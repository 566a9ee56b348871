"""Settings parsing and validation, prefix policy, pooling helpers: no model needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from embeddings_service.engine.loader import inspect_folder
from embeddings_service.engine.pooling import l2_normalize, mean_pool, shorten
from embeddings_service.engine.types import EngineLoadError
from embeddings_service.prefixes import RURI_V3_PREFIXES, PrefixPolicy, folder_prefixes
from embeddings_service.settings import EmbedSettings
from pydantic import ValidationError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EMBED_MODELS", "EMBED_MODELS_DIR", "ORTSERVE_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_serve_the_real_encoders_and_the_chat_models_from_the_models_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORTSERVE_MODELS_DIR", "/m")
    settings = EmbedSettings()
    assert settings.port == 8001
    assert [(m.id, m.path, m.kind, m.prefixes) for m in settings.models] == [
        ("all-minilm-l6-v2", Path("/m/all-minilm-l6-v2"), None, None),
        ("multilingual-e5-small", Path("/m/multilingual-e5-small"), None, None),  # prefixes: the folder's own
        ("smollm2-135m-instruct", Path("/m/smollm2-135m-instruct-hidden"), None, None),
        ("qwen2.5-coder-0.5b-instruct", Path("/m/qwen2.5-coder-0.5b-instruct"), None, None),
    ]  # and no random-weight model: rerank-tiny-random is for the cross-encoder tests only


def test_json_and_short_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBED_MODELS_DIR", "/models")
    monkeypatch.setenv(
        "EMBED_MODELS",
        '[{"id": "ruri", "path": "ruri", "prefixes": "ruri-v3"},'
        ' {"id": "phi-3.5-mini", "path": "/abs/phi", "kind": "llm-embedding", "max_length": 4096,'
        '  "instruction_template": "<instruct>{instruction}\\n<query>"}]',
    )
    ruri, phi = EmbedSettings().models
    assert ruri.path == Path("/models/ruri") and ruri.prefix_table() == RURI_V3_PREFIXES
    assert phi.path == Path("/abs/phi") and phi.kind == "llm-embedding" and phi.max_length == 4096
    monkeypatch.setenv("EMBED_MODELS", "a=x, b=/y/z")
    assert [(m.id, str(m.path)) for m in EmbedSettings().models] == [("a", "/models/x"), ("b", "/y/z")]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("a=x,a=y", "configured twice"),
        ("just-a-name", "expected id=path"),
        ('[{"id": "a", "path": "x", "prefixes": "nope"}]', "unknown prefix preset"),
        ('[{"id": "a", "path": "x", "kind": "chat"}]', "kind"),
        ('[{"id": "a", "path": "x", "typo": 1}]', "typo"),
        ('[{"id": "a", "path": "x", "instruction_template": "no placeholder"}]', "{instruction}"),
        ('[{"id": "a", "path": "x", "prefixes": {"search": "s: "}}]', "prefixes"),
        ("[]", "models"),
    ],
)
def test_bad_model_config_is_refused_at_start(monkeypatch: pytest.MonkeyPatch, value: str, fragment: str) -> None:
    monkeypatch.setenv("EMBED_MODELS", value)
    with pytest.raises(ValidationError) as info:
        EmbedSettings()
    assert fragment in str(info.value)


def test_engine_threads_unset_or_empty_leave_the_count_to_the_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EmbedSettings(models="a=/x").engine_threads is None
    monkeypatch.setenv("EMBED_ENGINE_THREADS", "")  # what compose passes for ${EMBED_ENGINE_THREADS:-}
    assert EmbedSettings(models="a=/x").engine_threads is None
    monkeypatch.setenv("EMBED_ENGINE_THREADS", "3")
    assert EmbedSettings(models="a=/x").engine_threads == 3


def test_every_setting_is_documented() -> None:
    assert all(field.description for field in EmbedSettings.model_fields.values())


def test_prefixes_applied_once_and_instruction_first() -> None:
    policy = PrefixPolicy(RURI_V3_PREFIXES)
    assert policy.apply("猫", "query", None) == "検索クエリ: 猫"
    assert policy.apply("検索クエリ: 猫", "query", None) == "検索クエリ: 猫"  # never twice
    assert policy.apply("猫", "sts", None) == "猫"
    assert policy.apply("猫", "clustering", None) == "トピック: 猫"
    assert policy.apply("猫", None, None) == "猫"
    assert policy.apply("cat", None, "Find pets") == "Instruct: Find pets\nQuery: cat"
    assert policy.apply("Instruct: Find pets\nQuery: cat", None, "Find pets") == "Instruct: Find pets\nQuery: cat"
    assert policy.apply("猫", "query", "Find") == "Instruct: Find\nQuery: 検索クエリ: 猫"
    assert PrefixPolicy({}).apply("cat", "query", None) == "cat"  # a model without a table takes no prefix


def test_e5_preset_and_folder_tables() -> None:
    e5 = PrefixPolicy(folder_prefixes("e5"))
    assert e5.apply("猫", "query", None) == "query: 猫"
    assert e5.apply("query: 猫", "query", None) == "query: 猫"
    assert e5.apply("猫", "document", None) == "passage: 猫"
    assert [e5.apply("x", kind, None) for kind in ("classification", "clustering", "sts")] == ["query: x"] * 3
    assert e5.apply("猫", None, None) == "猫"  # no input_type: the text as sent
    assert folder_prefixes(None) == {} and folder_prefixes({"query": "q: "}) == {"query": "q: "}
    for bad in ("e6", {"search": "s: "}, {"query": 1}, ["query: "]):
        with pytest.raises(ValueError):
            folder_prefixes(bad)


def test_pooling_helpers() -> None:
    hidden = np.array([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(mean_pool(hidden, mask), [[2.0, 2.0]])  # the padded position is ignored
    np.testing.assert_allclose(l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])), [[0.6, 0.8], [0.0, 0.0]])
    cut = shorten(np.array([[0.6, 0.8, 0.0]], dtype=np.float32), 1)
    np.testing.assert_allclose(cut, [[1.0]])


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for name in EmbedSettings.model_fields:
        assert f"`EMBED_{name.upper()}`" in readme, name


def test_a_folder_with_a_bad_prefix_table_is_refused(tmp_path: Path) -> None:
    for name in ("model.onnx", "tokenizer.json"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "ortserve_model.json").write_text('{"kind": "embedding", "prefixes": "e6"}')
    with pytest.raises(EngineLoadError, match="ortserve_model.json: unknown prefix preset 'e6'"):
        inspect_folder(tmp_path, None, None)
    (tmp_path / "ortserve_model.json").write_text('{"kind": "embedding", "prefixes": "e5"}')
    assert inspect_folder(tmp_path, None, None).config["prefixes"] == "e5"
