"""One int4 model folder's speed and memory, measured in a process of its own (so RSS is that folder's alone).

    python -m bench.quality.probe --folder DIR --threads 2 [--prompt-tokens 256] [--new-tokens 128]

Prints one JSON line: the load's RSS, prefill tok/s over a prompt of --prompt-tokens, greedy decode tok/s over
--new-tokens, the decode tok/s of --rows rows stepping together (the kernels' batched path, which 8-stream serving
runs), and the process's peak RSS. The prompt is the corpus's standard-library text, so every folder of one
model reads the same ids.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime_genai as og

from bench.quality.corpus import corpus


def status_mib(field: str) -> float:
    """A /proc/self/status memory field in MiB. VmHWM, not getrusage's ru_maxrss: that one survives exec, so a
    probe started by a large parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rows_decode_tok_s(model: og.Model, prompt: np.ndarray, rows: int, steps: int) -> float:
    """Tokens per second of `rows` copies of the prompt decoding together, greedy, over `steps` steps after the first
    (min_length keeps every row in every step)."""
    params = og.GeneratorParams(model)
    length = len(prompt) + steps + 1
    params.set_search_options(batch_size=rows, max_length=length, min_length=length, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(np.repeat(prompt[None, :], rows, axis=0))
    generator.generate_next_token()  # the first samples the prefill's logits
    start = time.perf_counter()
    for _ in range(steps):
        generator.generate_next_token()
    return round(rows * steps / (time.perf_counter() - start), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--rows", type=int, default=8, help="rows of the batched decode (0: none)")
    args = parser.parse_args()
    config = og.Config(str(args.folder))
    options = {"intra_op_num_threads": args.threads}
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    model = og.Model(config)
    tokenizer = og.Tokenizer(model)
    loaded_rss = status_mib("VmRSS")
    prompt = np.asarray(tokenizer.encode(corpus()[0].body)[: args.prompt_tokens], dtype=np.int32)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt) + args.new_tokens, do_sample=False)
    generator = og.Generator(model, params)
    start = time.perf_counter()
    generator.append_tokens(prompt)
    prefilled = time.perf_counter()
    steps = 0
    # min_length is not set, so an end-of-sequence token may stop early: the rate counts the steps really taken.
    while not generator.is_done() and steps < args.new_tokens:
        generator.generate_next_token()
        steps += 1
    done = time.perf_counter()
    rows_tok_s = rows_decode_tok_s(model, prompt[:64], args.rows, args.new_tokens // 2) if args.rows else None
    result = {
        "loaded_rss_mib": round(loaded_rss, 1),
        "peak_rss_mib": round(status_mib("VmHWM"), 1),
        "prefill_tok_s": round(len(prompt) / (prefilled - start), 2),
        "decode_tok_s": round(steps / (done - prefilled), 2) if steps else None,
        "decode_steps": steps,
        "rows": args.rows,
        "decode_rows_tok_s": rows_tok_s,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
