"""How far apart the logits of two ways of running the same tokens are, on this CPU: the figures behind the engine
tests' tolerances and docs/ENGINE_DESIGNS.md ("Numerics by CPU").

Every comparison is teacher-forced: both sides are fed the plain engine's greedy tokens, each keeps its own KV, and
the report gives the largest |Δ logit| over all steps (0 means bit-identical) beside the smallest top-2 margin of the
reference, which says how close a greedy choice came to flipping.

    .venv/bin/python -m bench.kernel_numerics --model ~/.cache/ortserve/models/r<recipe>/smollm2-135m-instruct
    qemu-x86_64 -cpu Haswell .venv/bin/python -m bench.kernel_numerics --model … --cpu "Haswell (qemu)"  # AVX2 only
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime_genai as og
from chat_service.engine.batched.decoder import OnnxDecoder
from ortserve_common.cpu import host_cpu

logger = logging.getLogger("bench.kernel_numerics")

PROMPTS = [
    "Once upon a time, in a land far away,",
    "def fibonacci(n):",
    "The three primary colours are",
    "1, 2, 3, 4,",
]
LONG_PROMPT = "The history of computing is long. " * 40 + "In summary,"


class Reference:
    """The plain ONNX Runtime GenAI loop at batch 1, teacher-forced: its logits after each fed token."""

    def __init__(self, model_path: Path, threads: int) -> None:
        config = og.Config(str(model_path))
        overlay = {"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}
        config.overlay(json.dumps(overlay))
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self.tokenizer.encode(text)]

    def greedy_logits(self, prompt: list[int], steps: int) -> tuple[list[int], list[np.ndarray]]:
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(prompt) + steps + 1, do_sample=False)
        generator = og.Generator(self.model, params)
        generator.append_tokens(np.asarray(prompt, dtype=np.int32))
        tokens: list[int] = []
        logits: list[np.ndarray] = []
        for _ in range(steps):
            row = np.asarray(generator.get_logits(), dtype=np.float32).reshape(-1)
            logits.append(row.copy())
            token = int(np.argmax(row))
            tokens.append(token)
            generator.append_tokens(np.asarray([token], dtype=np.int32))
        return tokens, logits


def margin(logits: np.ndarray) -> float:
    top2 = np.partition(logits, -2)[-2:]
    return float(top2[1] - top2[0])


def decoder(model_path: Path, threads: int, slots: int, max_len: int = 2048) -> OnnxDecoder:
    config = json.loads((model_path / "genai_config.json").read_text(encoding="utf-8"))
    made = OnnxDecoder(model_path, config, threads, slots, max_len)
    made.cache.ensure(max_len)  # the scheduler grows slots on demand; here they are long enough from the start
    return made


def batched_logits(dec: OnnxDecoder, prompts: list[list[int]], tokens: list[list[int]]) -> list[list[np.ndarray]]:
    """Rows 0…n-1 prefilled one by one, then decoded together, each fed its own tokens; logits per row per step."""
    out: list[list[np.ndarray]] = [[] for _ in prompts]
    for slot, prompt in enumerate(prompts):
        out[slot].append(dec.prefill([prompt], slot)[0].astype(np.float32).copy())
    lengths = [len(p) for p in prompts]
    for step in range(len(tokens[0]) - 1):
        logits = dec.decode([t[step] for t in tokens], lengths)
        for row in range(len(prompts)):
            out[row].append(logits[row].astype(np.float32).copy())
        lengths = [n + 1 for n in lengths]
    return out


def prefix_logits(dec: OnnxDecoder, prompt: list[int], cached: int, tokens: list[int]) -> list[np.ndarray]:
    """The prompt's first `cached` tokens prefilled, the rest appended by extend (as a prefix-cache hit does)."""
    dec.prefill([prompt[:cached]], 0)
    out = [dec.extend(0, prompt[cached:], cached=cached).astype(np.float32).copy()]
    length = len(prompt)
    for token in tokens[:-1]:
        out.append(dec.decode([token], [length])[0].astype(np.float32).copy())
        length += 1
    return out


def chunked_logits(dec: OnnxDecoder, prompt: list[int], chunk: int, tokens: list[int]) -> list[np.ndarray]:
    done = min(chunk, len(prompt))
    last = dec.prefill([prompt[:done]], 0)[0]
    while done < len(prompt):
        last = dec.extend(0, prompt[done : done + chunk], cached=done)
        done = min(len(prompt), done + chunk)
    out = [last.astype(np.float32).copy()]
    length = len(prompt)
    for token in tokens[:-1]:
        out.append(dec.decode([token], [length])[0].astype(np.float32).copy())
        length += 1
    return out


class _Rows(dict[str, float]):
    """The table so far, logged row by row: an emulated run takes long enough that progress matters."""

    def __setitem__(self, key: str, value: float) -> None:
        logger.info("%s: %.4g", key, value)
        super().__setitem__(key, value)


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class Plan:
    """How much to compare. Under qemu a forward pass of the 135M model costs seconds per token (about 2,000 times
    native), so the emulated plan keeps every prompt short and every comparison once."""

    prompts: tuple[str, ...] = tuple(PROMPTS)
    long_prompt: str = LONG_PROMPT
    remainders: tuple[int, ...] = (1, 2, 5, 17)
    chunk: int = 128
    compare_threads: bool = True


FULL = Plan()
QUICK = Plan(long_prompt=LONG_PROMPT[-300:], compare_threads=False)
EMULATED = Plan(
    prompts=tuple(PROMPTS[1:]),
    long_prompt="The history of computing is long. " * 3 + "In summary,",
    remainders=(1, 2, 5),
    chunk=8,
    compare_threads=False,
)


def measure(model_path: Path, steps: int, threads: int, cpu_label: str, plan: Plan = FULL) -> dict:
    reference = Reference(model_path, threads)
    prompts = [reference.encode(p) for p in plan.prompts]
    runs = [reference.greedy_logits(p, steps) for p in prompts]
    tokens = [t for t, _ in runs]
    ref_logits = [lg for _, lg in runs]
    rows = _Rows()
    # One session for every run (KV lives in its slots, nothing else carries over): under qemu, opening a session
    # (graph optimisation, int4 prepacking) costs far more than the runs.
    dec = decoder(model_path, threads, 4)
    one = batched_logits(dec, prompts[:1], tokens[:1])[0]
    rows["plain engine vs batched engine at 1 row"] = max_diff(ref_logits[0], one)
    if plan.compare_threads:
        other_threads = 1 if threads != 1 else 2
        alone = batched_logits(decoder(model_path, other_threads, 1), prompts[:1], tokens[:1])[0]
        rows[f"{threads} threads vs {other_threads} (1 row)"] = max_diff(one, alone)
    two: list[list[np.ndarray]] = []
    for n in range(2, len(prompts) + 1):
        got = batched_logits(dec, prompts[:n], tokens[:n])
        two = two or got
        rows[f"1 row vs {n} rows (row 0)"] = max_diff(one, got[0])
        rows[f"plain engine vs {n} rows (row {n - 1})"] = max_diff(ref_logits[n - 1], got[n - 1])
        if n > 2:  # does a row's result depend on how many other rows there are, once there are several?
            rows[f"2 rows vs {n} rows (row 0)"] = max_diff(two[0], got[0])
            rows[f"2 rows vs {n} rows (row 1)"] = max_diff(two[1], got[1])
    # The same row in slot 0 beside different company: its neighbours' tokens must not move its logits.
    swapped = batched_logits(dec, [prompts[0], prompts[2]], [tokens[0], tokens[2]])
    rows["2 rows, other company (row 0)"] = max_diff(two[0], swapped[0])
    long = reference.encode(plan.long_prompt)
    long_tokens, long_ref = reference.greedy_logits(long, steps // 2)
    cold = chunked_logits(dec, long, len(long), long_tokens)
    rows["plain engine vs cold prefill (long prompt)"] = max_diff(long_ref, cold)
    for remainder in plan.remainders:
        cached = len(long) - remainder
        hit = prefix_logits(dec, long, cached, long_tokens)
        rows[f"cold prefill vs prefix hit, {remainder} token(s) left to prefill"] = max_diff(cold, hit)
    chunks = chunked_logits(dec, long, plan.chunk, long_tokens)
    rows[f"whole prompt vs {plan.chunk}-token chunks"] = max_diff(cold, chunks)
    margins = [margin(x) for run in [*ref_logits, long_ref] for x in run]
    return {
        "model": model_path.name,
        "cpu": cpu_label,
        "steps": steps,
        "long_prompt_tokens": len(long),
        "max_abs_logit_diff": dict(rows),
        "smallest_top2_margin": min(margins),
        "steps_with_margin_below_0.05": sum(m < 0.05 for m in margins),
        "reference_steps": len(margins),
    }


def lone_row_cost(model_path: Path, threads: int, steps: int, cpu_label: str, rounds: int = 5) -> dict:
    """What batch-invariant mode costs a lone stream: a decode step of one row against one of two rows (the row and
    the scratch row), interleaved round by round so that a busy machine slows both alike; medians in ms."""
    dec = decoder(model_path, threads, 2, max_len=1024)
    prompt = [1] * 64
    dec.prefill([prompt], 0)
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for rows in (1, 2):
            start = time.perf_counter()
            for step in range(steps):
                dec.decode([2] * rows, [len(prompt) + step] * rows)
            times[rows].append((time.perf_counter() - start) * 1000 / steps)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    return {
        "model": model_path.name,
        "cpu": cpu_label,
        "step_ms_1_row": one,
        "step_ms_2_rows": two,
        "lone_stream_speed_in_invariant_mode": one / two,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="an int4 model folder (genai_config.json)")
    parser.add_argument("--steps", type=int, default=32, help="teacher-forced steps per prompt")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads on both sides")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--cost", action="store_true", help="time a 1-row against a 2-row decode step instead")
    parser.add_argument(
        "--quick", action="store_true", help="no second thread count and a shorter long prompt (for emulated CPUs)"
    )
    parser.add_argument(
        "--emulated", action="store_true", help="three short prompts, a 25-token long prompt (for qemu: hours less)"
    )
    parser.add_argument(
        "--cpu", help="what to call the CPU in the result (under qemu, /proc/cpuinfo still shows the host's)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cpu_label = args.cpu or host_cpu().describe()
    if args.cost:
        result = lone_row_cost(args.model.expanduser(), args.threads, args.steps, cpu_label)
    else:
        plan = EMULATED if args.emulated else QUICK if args.quick else FULL
        result = measure(args.model.expanduser(), args.steps, args.threads, cpu_label, plan)
    text = json.dumps(result, indent=2)
    logger.info("%s", text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
