"""Settings parsing and validation, prefix policy, pooling helpers: no model needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from embeddings_service.engine.pooling import l2_normalize, mean_pool, shorten
from embeddings_service.prefixes import RURI_V3_PREFIXES, PrefixPolicy
from embeddings_service.settings import EmbedSettings
from pydantic import ValidationError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EMBED_MODELS", "EMBED_MODELS_DIR", "ORTSERVE_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_serve_minilm_and_the_reranker_from_the_models_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORTSERVE_MODELS_DIR", "/m")
    settings = EmbedSettings()
    assert settings.port == 8001
    assert [(m.id, m.path, m.kind) for m in settings.models] == [
        ("all-minilm-l6-v2", Path("/m/all-minilm-l6-v2"), None),
        ("rerank-tiny-random", Path("/m/rerank-tiny-random"), None),
    ]


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
