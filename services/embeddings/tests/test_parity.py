"""The service's vectors against independent references: sentence-transformers for MiniLM, and a plain ONNX Runtime
GenAI loop (mean of the hidden states, L2-normed) for the LLM."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnxruntime_genai as og
import pytest
from embeddings_testing import (
    LLM_ID,
    LLM_PLAIN_ID,
    MINILM_HF,
    MINILM_ID,
    SMOLLM_HIDDEN,
    EmbedServer,
    cosine,
    sentence_transformers_reference,
)

logger = logging.getLogger(__name__)

PARITY_TEXTS = [
    "The capital of France is Paris.",
    "A short one.",
    "Embeddings map sentences to vectors so that similar meanings land close together.",
    "Café naïve résumé — ÜBER straße!",
    "日本の首都は東京です。",
    "   leading and trailing spaces   ",
    "1234567890 + 0987654321 = ?",
    # Longer than the model's 256 tokens: sentence-transformers cuts the tail, and so does `truncate: true`.
    " ".join(f"word{i} is followed by another sentence about topic {i % 7}." for i in range(80)),
]


def test_minilm_matches_sentence_transformers(server: EmbedServer) -> None:
    if not (MINILM_HF / ".complete").exists():
        pytest.fail(f"{MINILM_HF} is not built; run `make model`")
    reference, max_seq_length = sentence_transformers_reference(PARITY_TEXTS)
    got, body = server.embed(MINILM_ID, PARITY_TEXTS, truncate=True)
    similarity = cosine(got, reference)
    logger.info(
        "MiniLM vs sentence-transformers: min cosine %.7f, max abs diff %.2e",
        similarity.min(),
        np.abs(got - reference).max(),
    )
    assert max_seq_length == 256
    assert similarity.min() >= 0.9999, similarity
    assert body["usage"]["prompt_tokens"] <= 256 * len(PARITY_TEXTS)


def _reference_llm_embedding(model: og.Model, tokenizer: og.Tokenizer, text: str) -> np.ndarray:
    ids = np.asarray(tokenizer.encode(text), dtype=np.int32)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 1, batch_size=1)
    generator = og.Generator(model, params)
    generator.append_tokens(ids)
    pooled = np.asarray(generator.get_output("hidden_states"))[0].mean(axis=0)
    return pooled / np.linalg.norm(pooled)


def test_llm_hidden_state_embeddings(server: EmbedServer) -> None:
    texts = ["What is the capital of France?", "Paris is the capital of France.", "I like green bananas."]
    got, body = server.embed(LLM_ID, texts)
    assert got.shape == (3, 576)
    config = og.Config(str(SMOLLM_HIDDEN))
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": 2}}}}))
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)
    reference = np.stack([_reference_llm_embedding(model, tokenizer, t) for t in texts])
    assert cosine(got, reference).min() > 0.9999
    assert body["usage"]["prompt_tokens"] == sum(len(tokenizer.encode(t)) for t in texts)
    # A sanity check on meaning: the question is closer to its answer than to the bananas.
    assert cosine(got[0], got[1]) > cosine(got[0], got[2])


def test_llm_without_hidden_states_is_a_clear_400(server: EmbedServer) -> None:
    response = server.post("/v1/embeddings", {"model": LLM_PLAIN_ID, "input": "hello"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "model" and error["code"] == "model_not_supported"
    assert "hidden_states" in error["message"] and "include_hidden_states=true" in error["message"]
    # It is refused on /v1/rerank the same way, and the service is still fine afterwards.
    response = server.post("/v1/rerank", {"model": LLM_PLAIN_ID, "query": "q", "documents": ["d"]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    assert server.post("/v1/embeddings", {"model": LLM_ID, "input": "hello"}).status_code == 200
