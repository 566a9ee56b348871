"""/v1/embeddings end to end through the OpenAI SDK and raw HTTP, on the real MiniLM model."""

from __future__ import annotations

import numpy as np
import openai
from embeddings_testing import MINILM_ID, RURI_PREFIXED_ID, EmbedServer, cosine, decode_base64
from tokenizers import Tokenizer

TEXTS = ["The capital of France is Paris.", "A short one.", "Embeddings map sentences to vectors."]


def test_sdk_float_and_base64_agree(client: openai.OpenAI) -> None:
    as_float = client.embeddings.create(model=MINILM_ID, input=TEXTS, encoding_format="float")
    # The SDK asks for base64 by default and decodes it itself: the two must be the same numbers.
    as_default = client.embeddings.create(model=MINILM_ID, input=TEXTS)
    assert as_float.model == MINILM_ID and as_float.object == "list"
    assert [d.index for d in as_float.data] == [0, 1, 2]
    for a, b in zip(as_float.data, as_default.data, strict=True):
        assert len(a.embedding) == 384
        assert np.array_equal(np.float32(a.embedding), np.float32(b.embedding))
        assert abs(np.linalg.norm(a.embedding) - 1.0) < 1e-5


def test_raw_base64_is_little_endian_float32_equal_to_float(server: EmbedServer) -> None:
    floats, _ = server.embed(MINILM_ID, TEXTS)
    response = server.post("/v1/embeddings", {"model": MINILM_ID, "input": TEXTS, "encoding_format": "base64"})
    body = response.json()
    decoded = np.stack([decode_base64(d["embedding"]) for d in body["data"]])
    assert decoded.dtype == np.dtype("<f4") and decoded.shape == (3, 384)
    assert np.array_equal(decoded, floats)


def test_usage_is_exact_token_count(server: EmbedServer, minilm_tokenizer: Tokenizer) -> None:
    _, body = server.embed(MINILM_ID, TEXTS, user="someone")  # `user` is accepted
    expected = sum(len(minilm_tokenizer.encode(t).ids) for t in TEXTS)  # [CLS] and [SEP] included
    assert body["usage"] == {"prompt_tokens": expected, "total_tokens": expected}


def test_dimensions_cut_and_renormalise(client: openai.OpenAI) -> None:
    full = client.embeddings.create(model=MINILM_ID, input=TEXTS[0], encoding_format="float").data[0].embedding
    short = client.embeddings.create(model=MINILM_ID, input=TEXTS[0], dimensions=64).data[0].embedding
    assert len(short) == 64
    expected = np.float32(full[:64]) / np.linalg.norm(np.float32(full[:64]))
    np.testing.assert_allclose(short, expected, atol=1e-6)
    assert abs(np.linalg.norm(short) - 1.0) < 1e-5


def test_token_id_input_matches_text(client: openai.OpenAI, minilm_tokenizer: Tokenizer) -> None:
    ids = [minilm_tokenizer.encode(t).ids for t in TEXTS]
    by_text = client.embeddings.create(model=MINILM_ID, input=TEXTS, encoding_format="float")
    by_ids = client.embeddings.create(model=MINILM_ID, input=ids, encoding_format="float")
    one = client.embeddings.create(model=MINILM_ID, input=ids[0], encoding_format="float")
    assert by_ids.usage.prompt_tokens == by_text.usage.prompt_tokens == sum(map(len, ids))
    for a, b in zip(by_text.data, by_ids.data, strict=True):
        assert cosine(np.float32(a.embedding), np.float32(b.embedding)) > 0.99999
    assert len(one.data) == 1 and one.usage.prompt_tokens == len(ids[0])


def test_input_type_prefix_through_extra_body(client: openai.OpenAI, minilm_tokenizer: Tokenizer) -> None:
    text = "日本の首都は東京です"
    query = client.embeddings.create(
        model=RURI_PREFIXED_ID, input=text, encoding_format="float", extra_body={"input_type": "query"}
    )
    spelled_out = client.embeddings.create(model=RURI_PREFIXED_ID, input="検索クエリ: " + text, encoding_format="float")
    already = client.embeddings.create(
        model=RURI_PREFIXED_ID, input="検索クエリ: " + text, encoding_format="float", extra_body={"input_type": "query"}
    )
    plain = client.embeddings.create(model=RURI_PREFIXED_ID, input=text, encoding_format="float")
    sts = client.embeddings.create(
        model=RURI_PREFIXED_ID, input=text, encoding_format="float", extra_body={"input_type": "sts"}
    )
    assert np.array_equal(query.data[0].embedding, spelled_out.data[0].embedding)
    assert np.array_equal(already.data[0].embedding, spelled_out.data[0].embedding)  # not prefixed twice
    assert np.array_equal(sts.data[0].embedding, plain.data[0].embedding)  # sts's prefix is empty
    assert query.usage.prompt_tokens == len(minilm_tokenizer.encode("検索クエリ: " + text).ids)
    assert not np.array_equal(query.data[0].embedding, plain.data[0].embedding)


def test_instruction_uses_the_e5_template(server: EmbedServer) -> None:
    with_instruction, body = server.embed(MINILM_ID, "cats", instruction="Find pets")
    spelled_out, expected = server.embed(MINILM_ID, "Instruct: Find pets\nQuery: cats")
    assert np.array_equal(with_instruction, spelled_out)
    assert body["usage"] == expected["usage"]


def test_models_list_says_how_each_model_reranks(client: openai.OpenAI) -> None:
    cards = {m.id: m for m in client.models.list().data}
    minilm = cards[MINILM_ID].model_dump()
    assert minilm["kind"] == "embedding" and minilm["rerank_method"] == "bi-encoder-cosine"
    assert minilm["dimensions"] == 384 and minilm["max_input_tokens"] == 256
    assert cards["rerank-tiny-random"].model_dump()["rerank_method"] == "cross-encoder"
    assert client.models.retrieve(RURI_PREFIXED_ID).model_dump()["input_types"] == [
        "classification",
        "clustering",
        "document",
        "query",
    ]
