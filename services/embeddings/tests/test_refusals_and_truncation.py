"""Every refusal: status, OpenAI error shape, and the `param` it names; and what truncation keeps."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest
from embeddings_testing import MINILM, MINILM_ID, RERANK_ID, RURI_PREFIXED_ID, EmbedServer
from tokenizers import Tokenizer

LONG = "lorem ipsum dolor " * 120  # ~360 tokens, over MiniLM's 256


def _assert_error(response, status: int, param: str | None, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    assert error["type"] == ("invalid_request_error" if status < 500 else "server_error")
    return error


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": MINILM_ID, "input": []}, "input", "invalid_value"),
        ({"model": MINILM_ID, "input": ""}, "input", "invalid_value"),
        ({"model": MINILM_ID, "input": ["ok", ""]}, "input[1]", "invalid_value"),
        ({"model": MINILM_ID, "input": ["x"] * 65}, "input", "invalid_value"),  # EMBED_MAX_INPUTS=64 here
        ({"model": MINILM_ID, "input": [101, 30522, 102]}, "input[1]", "invalid_value"),
        ({"model": MINILM_ID, "input": [[101, 102], [101, -1, 102]]}, "input[1][1]", "invalid_value"),
        ({"model": MINILM_ID, "input": [[101, 102], []]}, "input[1]", "invalid_value"),
        ({"model": MINILM_ID, "input": ["a", 1]}, "input", "invalid_type"),  # no OpenAI input shape mixes types
        ({"model": MINILM_ID, "input": "x", "dimensions": 0}, "dimensions", None),
        ({"model": MINILM_ID, "input": "x", "dimensions": 385}, "dimensions", "invalid_value"),
        ({"model": MINILM_ID, "input": "x", "encoding_format": "int8"}, "encoding_format", None),
        ({"model": MINILM_ID, "input": "x", "input_type": "search"}, "input_type", None),
        ({"model": MINILM_ID, "input": LONG}, "input", "context_length_exceeded"),
        ({"model": MINILM_ID, "input": ["ok", LONG]}, "input[1]", "context_length_exceeded"),
        ({"model": MINILM_ID, "input": [101] * 300}, "input", "context_length_exceeded"),
        ({"model": RURI_PREFIXED_ID, "input": [101, 102], "input_type": "query"}, "input_type", "unsupported_value"),
        ({"model": MINILM_ID, "input": [101, 102], "instruction": "x"}, "instruction", "unsupported_value"),
        ({"model": RERANK_ID, "input": "x"}, "model", "model_not_supported"),
        ({"input": "x"}, "model", "missing_required_parameter"),
        ({"model": MINILM_ID}, "input", "missing_required_parameter"),
    ],
)
def test_embedding_refusals(server: EmbedServer, body: dict, param: str, code: str | None) -> None:
    _assert_error(server.post("/v1/embeddings", body), 400, param, code)


def test_too_long_names_the_limit(server: EmbedServer) -> None:
    error = _assert_error(server.post("/v1/embeddings", {"model": MINILM_ID, "input": LONG}), 400, "input")
    assert "256" in error["message"] and "truncate" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": RERANK_ID, "query": "q", "documents": []}, "documents"),
        ({"model": RERANK_ID, "query": "q", "documents": ["d"] * 17}, "documents"),  # EMBED_MAX_DOCUMENTS=16
        ({"model": RERANK_ID, "query": "q", "documents": ["d"], "top_n": 0}, "top_n"),
        ({"model": RERANK_ID, "query": "q", "documents": ["d"], "top_k": -1}, "top_k"),
        ({"model": MINILM_ID, "query": "q", "documents": ["d"], "top_n": 0}, "top_n"),
        ({"model": RERANK_ID, "query": "", "documents": ["d"]}, "query"),
        ({"model": RERANK_ID, "query": "q", "documents": ["d", ""]}, "documents[1]"),
        ({"model": RERANK_ID, "query": "q", "documents": [{"txt": "d"}]}, "documents[0]"),
        ({"model": RERANK_ID, "query": "q", "documents": ["x " * 600]}, "documents[0]"),
        ({"model": RERANK_ID, "query": "x " * 600, "documents": ["d"], "truncate": True}, "query"),
        ({"model": MINILM_ID, "query": "q", "documents": ["ok", LONG]}, "documents[1]"),
        ({"query": "q", "documents": ["d"]}, "model"),
    ],
)
def test_rerank_refusals(server: EmbedServer, body: dict, param: str) -> None:
    _assert_error(server.post("/v1/rerank", body), 400, param)


def test_unknown_model_malformed_json_and_paths(server: EmbedServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert info.value.code == "model_not_found" and info.value.param == "model"
    _assert_error(server.post("/v1/rerank", {"model": "nope", "query": "q", "documents": ["d"]}), 404, "model")
    _assert_error(server.post("/v1/embeddings", b'{"model": "x", "input": ['), 400, None, "invalid_json")
    _assert_error(httpx.get(server.base_url + "/v1/models/nope"), 404, "model", "model_not_found")
    _assert_error(httpx.get(server.base_url + "/v1/embeddings"), 405, None, "method_not_allowed")
    _assert_error(httpx.get(server.base_url + "/v1/nothing"), 404, None, "not_found")


def test_truncate_cuts_the_tail(server: EmbedServer, minilm_tokenizer: Tokenizer) -> None:
    got, body = server.embed(MINILM_ID, LONG, truncate=True)
    assert body["usage"]["prompt_tokens"] == 256
    ids = minilm_tokenizer.encode(LONG).ids
    head = ids[:255] + [ids[-1]]  # [CLS] + the first 254 word pieces + [SEP]
    expected, _ = server.embed(MINILM_ID, [head])
    assert np.allclose(got, expected, atol=1e-6)


def test_truncation_keeps_the_prefix(server: EmbedServer, minilm_tokenizer: Tokenizer) -> None:
    got, body = server.embed(RURI_PREFIXED_ID, LONG, truncate=True, input_type="document")
    assert body["usage"]["prompt_tokens"] == 256
    ids = minilm_tokenizer.encode("検索文書: " + LONG).ids
    expected, _ = server.embed(RURI_PREFIXED_ID, [ids[:255] + [ids[-1]]])
    assert np.allclose(got, expected, atol=1e-6)
    prefix_ids = minilm_tokenizer.encode("検索文書: ", add_special_tokens=False).ids
    assert ids[1 : 1 + len(prefix_ids)] == prefix_ids


def test_token_ids_truncate_keeps_the_special_tokens(server: EmbedServer, minilm_tokenizer: Tokenizer) -> None:
    ids = minilm_tokenizer.encode(LONG).ids
    got, body = server.embed(MINILM_ID, [ids], truncate=True)
    by_text, _ = server.embed(MINILM_ID, LONG, truncate=True)
    assert body["usage"]["prompt_tokens"] == 256
    assert np.allclose(got, by_text, atol=1e-6)


def test_default_truncate_setting(real_models: None) -> None:
    server = EmbedServer([{"id": MINILM_ID, "path": str(MINILM)}], EMBED_DEFAULT_TRUNCATE="true").start()
    try:
        _, body = server.embed(MINILM_ID, LONG)
        assert body["usage"]["prompt_tokens"] == 256
        # A request can still ask for the refusal.
        refused = server.post("/v1/embeddings", {"model": MINILM_ID, "input": LONG, "truncate": False})
        _assert_error(refused, 400, "input")
    finally:
        server.stop()
