"""Fixtures: the embeddings service as a real uvicorn process on the real models, and the OpenAI SDK on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from embeddings_testing import MINILM, RERANKER, SMOLLM_HIDDEN, SMOLLM_PLAIN, EmbedServer
from tokenizers import Tokenizer


def _require(path: Path) -> Path:
    if not (path / ".complete").exists():
        pytest.fail(f"model {path} is not built; run `make model` (make test does it for you)")
    return path


@pytest.fixture(scope="session")
def real_models() -> None:
    for path in (MINILM, RERANKER, SMOLLM_HIDDEN, SMOLLM_PLAIN):
        _require(path)


@pytest.fixture(scope="session")
def server(real_models: None) -> Iterator[EmbedServer]:
    # A long batch wait so that concurrent test requests really share batches.
    server = EmbedServer(EMBED_MAX_WAIT_MS="20", EMBED_MAX_INPUTS="64", EMBED_MAX_DOCUMENTS="16").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(server: EmbedServer) -> openai.OpenAI:
    return server.client()


@pytest.fixture(scope="session")
def minilm_tokenizer(real_models: None) -> Tokenizer:
    """An independent tokenizer on the folder's tokenizer.json, with its shipped 128-token truncation removed."""
    tokenizer = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
