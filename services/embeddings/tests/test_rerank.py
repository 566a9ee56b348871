"""/v1/rerank on the MiniLM bi-encoder (cosine) and on the random-weight cross-encoder (sigmoid of its logit)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from embeddings_testing import MINILM_ID, RERANK_ID, RERANKER, EmbedServer, cosine
from tokenizers import Tokenizer

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Bananas are a good source of potassium.",
    "Paris is the capital and largest city of France.",
    {"text": "The Eiffel Tower was finished in 1889."},
    "Berlin is the capital of Germany.",
]
TEXTS = [d if isinstance(d, str) else d["text"] for d in DOCUMENTS]


def test_bi_encoder_ranks_the_relevant_document_first(server: EmbedServer) -> None:
    response = server.post("/v1/rerank", {"model": MINILM_ID, "query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert body["model"] == MINILM_ID
    assert results[0]["index"] == 1 and results[0]["document"] == {"text": TEXTS[1]}
    assert results[-1]["index"] == 0  # bananas last
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    # The score is the cosine similarity of the embeddings, exactly what /v1/embeddings gives.
    vectors, embed_body = server.embed(MINILM_ID, [QUERY, *TEXTS])
    by_index = {r["index"]: r["relevance_score"] for r in results}
    for i in range(len(TEXTS)):
        assert abs(by_index[i] - float(cosine(vectors[0], vectors[1 + i]))) < 1e-5
    # The query is embedded once: usage counts the tokens the model ran.
    tokens = embed_body["usage"]["prompt_tokens"]
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_top_n_top_k_and_return_documents(server: EmbedServer) -> None:
    request = {"model": MINILM_ID, "query": QUERY, "documents": DOCUMENTS, "top_n": 2, "return_documents": False}
    body = server.post("/v1/rerank", request).json()
    assert len(body["results"]) == 2 and all("document" not in r for r in body["results"])
    body = server.post("/rerank", {"model": MINILM_ID, "query": QUERY, "documents": DOCUMENTS, "top_k": 1}).json()
    assert [r["index"] for r in body["results"]] == [1]
    body = server.post("/v1/rerank", {"model": MINILM_ID, "query": QUERY, "documents": TEXTS, "top_n": 99}).json()
    assert len(body["results"]) == len(TEXTS)


def _cross_encoder_reference(query: str, documents: list[str]) -> tuple[np.ndarray, int]:
    tokenizer = Tokenizer.from_file(str(RERANKER / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    session = ort.InferenceSession(str(RERANKER / "model.onnx"), providers=["CPUExecutionProvider"])
    scores, tokens = [], 0
    for doc in documents:  # one pair at a time: no padding at all in the reference
        encoding = tokenizer.encode(query, doc)
        feeds = {
            "input_ids": np.array([encoding.ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(encoding.ids)), dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        logit = float(session.run(["logits"], feeds)[0][0, 0])
        scores.append(1 / (1 + np.exp(-logit)))
        tokens += len(encoding.ids)
    return np.array(scores), tokens


def test_cross_encoder_scores_are_the_models_own(server: EmbedServer) -> None:
    response = server.post("/v1/rerank", {"model": RERANK_ID, "query": QUERY, "documents": DOCUMENTS})
    assert response.status_code == 200, response.text
    body = response.json()
    expected, tokens = _cross_encoder_reference(QUERY, TEXTS)
    got = np.zeros(len(TEXTS))
    for result in body["results"]:
        got[result["index"]] = result["relevance_score"]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [r["index"] for r in body["results"]] == list(np.argsort(-expected, kind="stable"))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}  # every query–document pair


def test_cross_encoder_truncate_cuts_the_document_tail(server: EmbedServer) -> None:
    long_doc = "paris france capital " * 300
    body = server.post(
        "/v1/rerank", {"model": RERANK_ID, "query": QUERY, "documents": [long_doc, "short"], "truncate": True}
    ).json()
    tokenizer = Tokenizer.from_file(str(RERANKER / "tokenizer.json"))
    tokenizer.no_padding()  # the shipped tokenizer.json pads to 128
    short_pair = len(tokenizer.encode(QUERY, "short").ids)
    assert body["usage"]["prompt_tokens"] == 512 + short_pair
