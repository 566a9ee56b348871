#!/usr/bin/env python3
"""Checks the models that build.py produced, in the build venv, and logs the figures.

    python tools/model_build/verify.py --models DIR [--only NAME[,NAME]]

Exits non-zero when a check fails. Parity references (torch, sentence-transformers) are read from DIR/_hf/.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import common  # a script: its folder is on sys.path

log = logging.getLogger("model_build.verify")

QUESTION = "What is the capital of France?"
SENTENCES = [
    "The capital of France is Paris.",
    "Paris is the largest city in France.",
    "I like to eat apples and bananas in the morning.",
    "ONNX Runtime runs transformer models on the CPU.",
    "a",
    "This sentence is a good deal longer than the others, so that the batch needs padding and the attention "
    "mask really matters for mean pooling over the tokens that are not padding at all.",
]


def _messages_json(system: str | None = None) -> str:
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": QUESTION})
    return json.dumps(msgs)


def _greedy(og, model, tokenizer, prompt: str, max_length: int) -> tuple[list[int], list[int], float]:
    ids = tokenizer.encode(prompt)
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=max_length)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    out: list[int] = []
    start = time.monotonic()
    while not gen.is_done():
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    return list(ids), out, time.monotonic() - start


def check_smollm2(models: Path) -> None:
    import onnxruntime_genai as og

    folder = models / "smollm2-135m-instruct"
    start = time.monotonic()
    model = og.Model(str(folder))
    tokenizer = og.Tokenizer(model)
    log.info("smollm2: loaded in %.2fs", time.monotonic() - start)
    prompt = tokenizer.apply_chat_template(_messages_json(), add_generation_prompt=True)
    log.info("smollm2: apply_chat_template -> %r", prompt)
    if "<|im_start|>user\n" + QUESTION not in prompt or not prompt.endswith("<|im_start|>assistant\n"):
        raise AssertionError(f"unexpected ChatML prompt: {prompt!r}")
    ids, out, secs = _greedy(og, model, tokenizer, prompt, 128)
    text = tokenizer.decode([t for t in out if t not in (2,)])
    log.info(
        "smollm2: prompt %d tokens, %d generated in %.2fs (%.0f tok/s): %r",
        len(ids),
        len(out),
        secs,
        len(out) / secs,
        text,
    )
    if "Paris" not in text:
        raise AssertionError(f"greedy answer does not name Paris: {text!r}")


def check_smollm2_hidden(models: Path) -> None:
    import onnxruntime_genai as og

    model = og.Model(str(models / "smollm2-135m-instruct-hidden"))
    tokenizer = og.Tokenizer(model)
    ids = tokenizer.encode(QUESTION)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=64)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    hidden = gen.get_output("hidden_states")
    logits = gen.get_output("logits")
    log.info(
        "smollm2-hidden: %d tokens -> hidden_states %s %s, logits %s",
        len(ids),
        list(hidden.shape),
        hidden.dtype,
        list(logits.shape),
    )
    if list(hidden.shape) != [1, len(ids), 576]:
        raise AssertionError(f"hidden_states shape {list(hidden.shape)} != [1, {len(ids)}, 576]")


def check_phi3(models: Path) -> None:
    import onnxruntime_genai as og

    folder = models / "phi3-tiny"
    cfg = json.loads((folder / "genai_config.json").read_text())["model"]
    model = og.Model(str(folder))
    tokenizer = og.Tokenizer(model)
    prompt = tokenizer.apply_chat_template(_messages_json("Be brief."), add_generation_prompt=True)
    expected = f"<|system|>\nBe brief.<|end|>\n<|user|>\n{QUESTION}<|end|>\n<|assistant|>\n"
    log.info(
        "phi3-tiny: genai type %s, context %d, eos %r; apply_chat_template -> %r",
        cfg["type"],
        cfg["context_length"],
        cfg["eos_token_id"],
        prompt,
    )
    if prompt != expected:
        raise AssertionError(f"Phi-3 chat template gave {prompt!r}, expected {expected!r}")
    end_ids = tokenizer.encode("<|end|>")
    if list(end_ids) != [cfg["eos_token_id"]]:
        raise AssertionError("<|end|> encodes to {}, eos_token_id is {!r}".format(list(end_ids), cfg["eos_token_id"]))
    ids, out, secs = _greedy(og, model, tokenizer, prompt, len(tokenizer.encode(prompt)) + 16)
    log.info("phi3-tiny: generated %d tokens in %.3fs: %s", len(out), secs, out)
    if not out:
        raise AssertionError("phi3-tiny generated nothing")
    hf = models / "_hf" / "phi3-tiny"
    if hf.is_dir():
        import torch
        from transformers import AutoModelForCausalLM

        ref_model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
        with torch.no_grad():
            ref = ref_model.generate(
                torch.tensor([ids]),
                max_new_tokens=len(out),
                do_sample=False,
                eos_token_id=cfg["eos_token_id"],
                pad_token_id=cfg["pad_token_id"],
            )
        ref_out = ref[0, len(ids) :].tolist()
        log.info("phi3-tiny: torch greedy ids %s the ONNX ones", "equal" if ref_out == out else "DIFFER from")
        if ref_out != out:
            raise AssertionError(f"torch {ref_out} != onnx {out}")


def check_minilm(models: Path) -> None:
    import numpy as np
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    folder = models / "all-minilm-l6-v2"
    meta = json.loads((folder / "ortserve_model.json").read_text())
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(meta["max_length"])
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    encs = tok.encode_batch(SENTENCES)
    feed = {
        "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
    }
    hidden = sess.run(["last_hidden_state"], feed)[0]
    mask = feed["attention_mask"][..., None].astype(np.float32)
    pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
    ours = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    ref = SentenceTransformer(str(models / "_hf" / "all-minilm-l6-v2"), device="cpu").encode(
        SENTENCES, normalize_embeddings=True, convert_to_numpy=True
    )
    cos = (ours * ref).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    log.info(
        "minilm: meta %s; %d sentences (batch padded to %d), dims %d, cosine min %.7f, max abs diff %.2e",
        meta,
        len(SENTENCES),
        feed["input_ids"].shape[1],
        ours.shape[1],
        cos.min(),
        np.abs(ours - ref).max(),
    )
    if ours.shape[1] != meta["dimensions"] or cos.min() < 0.9999:
        raise AssertionError(f"embedding parity failed: cosines {cos}")


def check_rerank(models: Path) -> None:
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = models / "rerank-tiny-random"
    meta = json.loads((folder / "ortserve_model.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    query = "what is the capital of france?"
    enc = tokenizer(
        [query] * len(SENTENCES),
        SENTENCES,
        padding=True,
        truncation=True,
        max_length=meta["max_length"],
        return_tensors="np",
    )
    feed = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], feed)[0]
    ref_model = BertForSequenceClassification.from_pretrained(models / "_hf" / "rerank-tiny-random").eval()
    with torch.no_grad():
        ref = ref_model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
    diff = float(np.abs(got - ref).max())
    log.info(
        "rerank: meta %s; logits shape %s, scores %s, max abs diff vs torch %.2e",
        meta,
        list(got.shape),
        np.round(got[:, 0], 4).tolist(),
        diff,
    )
    if list(got.shape) != [len(SENTENCES), 1] or diff > 1e-4:
        raise AssertionError(f"rerank parity failed (diff {diff:.3e})")


CHECKS = {
    "smollm2-135m-instruct": check_smollm2,
    "smollm2-135m-instruct-hidden": check_smollm2_hidden,
    "phi3-tiny": check_phi3,
    "all-minilm-l6-v2": check_minilm,
    "rerank-tiny-random": check_rerank,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify the models built by build.py.")
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--only", help="comma-separated model names (default: all)")
    args = parser.parse_args(argv)
    common.setup_logging()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    common.force_offline()
    names = [n.strip() for n in args.only.split(",")] if args.only else list(CHECKS)
    failed = []
    for name in names:
        start = time.monotonic()
        try:
            CHECKS[name](args.models.expanduser())
            log.info("PASS %s (%.1fs)", name, time.monotonic() - start)
        except Exception as e:  # report every model, then fail
            log.error("FAIL %s: %s", name, e)
            failed.append(name)
    if failed:
        log.error("%d of %d checks failed: %s", len(failed), len(names), ", ".join(failed))
        return 1
    log.info("all %d checks passed", len(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
