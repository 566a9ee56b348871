"""The fp32 reference: the weights the int4 build quantized, run in torch (in the model-build venv).

The build does not keep an fp32 ONNX model (only SmolLM2's fp32 HF folder, `_hf/`), so the reference is computed
with transformers on the same fp32 weights the builder was given: SmolLM2's `_hf` folder, or for Qwen2.5-Coder the
GGUF dequantized exactly as the build does (tools/model_build/llm.fp32_model_from_gguf, the output matrix as the tied
table). It reads the token ids the int4 side used, so both score the very same tokens.

    build-venv/bin/python -m bench.quality.fp32_torch --tokens tokens.json --out fp32.json (--hf DIR | --gguf FILE)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from bench.quality.perplexity import score

ROOT = Path(__file__).resolve().parents[2]
logger = logging.getLogger("bench.quality.fp32_torch")


def load_model(hf: Path | None, gguf: Path | None) -> torch.nn.Module:
    if hf is not None:
        from transformers import AutoModelForCausalLM  # type: ignore[import-not-found]

        return AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    assert gguf is not None
    sys.path.insert(0, str(ROOT / "tools/model_build"))
    import llm  # type: ignore[import-not-found]  # the build's own loader, so the reference is what it quantized

    model, _tokenizer, _config = llm.fp32_model_from_gguf(gguf, tie_from_lm_head=True)
    return model


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=Path, required=True, help='{"context", "stride", "texts": {name: [ids]}}')
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hf", type=Path)
    parser.add_argument("--gguf", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    job = json.loads(args.tokens.read_text())
    start = time.monotonic()
    model = load_model(args.hf, args.gguf)
    loaded_s = time.monotonic() - start

    @torch.inference_mode()
    def logits_of(window: list[int]):
        return model(torch.tensor([window])).logits[0].float().numpy()

    results = {}
    for name, tokens in job["texts"].items():
        begun = time.monotonic()
        total = score(tokens, job["context"], job["stride"], logits_of)
        results[name] = {"nll": total.nll, "count": total.count, "seconds": round(time.monotonic() - begun, 1)}
        logger.info("fp32 torch %s: perplexity %.4f over %d tokens", name, total.perplexity, total.count)
    out = {"texts": results, "load_s": round(loaded_s, 1), "torch": torch.__version__}
    args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
