"""In this process, no HTTP: where the batched engine's decode time goes, at one row or at --rows rows.

Three arms decode the same greedy request (the same prompt ids, --max-tokens new tokens; at --rows N, N copies of
it decoding together), interleaved round by round so that a busy machine moves them alike:

- plain: ONNX Runtime GenAI's own loop (og.Generator, batch N), what the generator engine runs;
- decoder: the batched engine's onnxruntime session alone (engine/batched/decoder.OnnxDecoder), prefill then one
  decode call per token with an argmax between: the same graph and KV slots, no scheduler, no sampler, no threads;
- batched: the whole BatchedEngine (scheduler thread, sampler, detokenizer, events to asyncio), N requests at once.
  Its rate is read while all N rows decode (from the last row's first token to the first row's end), so the rows'
  own prefills, one a step, are left out as the other arms leave theirs out.

plain against decoder is what the session and its KV layout cost; decoder against batched is what the scheduler
around it costs. Ratios are paired within a round; the median is reported, with the CPU and the load average.

    .venv/bin/python -m bench.engine_ab [--model DIR] [--rows 1] [--rounds 5] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.config import EngineConfig
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.types import GenerationRequest, SamplingParams
from ortserve_common.cpu import engine_threads, host_cpu
from ortserve_common.models_dir import models_dir
from ortserve_testing.plain_engine import PlainGenerator

from bench.cpu_monitor import load_average

logger = logging.getLogger("bench.engine_ab")
PROMPT = "Write a Python function that parses an ISO 8601 date string without using datetime, with tests."


def decode_rate(
    prefill: Callable[[], list[int]], step: Callable[[list[int], int], list[int]], max_tokens: int
) -> float:
    """Tokens per second, all rows together, over the decode steps only (the first tokens come from the prefill)."""
    tokens = prefill()
    start = time.perf_counter()
    for length in range(max_tokens - 1):
        tokens = step(tokens, length)
    return len(tokens) * (max_tokens - 1) / (time.perf_counter() - start)


def steady_rate(times: list[list[float]]) -> float:
    """Tokens per second of every row together while all of them decode: from the last row's first token to the
    first row's last one (each row's token times, first included)."""
    start, end = max(row[0] for row in times), min(row[-1] for row in times)
    return sum(start < t <= end for row in times for t in row) / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=models_dir() / "qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--slots", type=int, default=8, help="the batched engine's KV slots (CHAT_MAX_BATCH_SIZE)")
    parser.add_argument("--rows", type=int, default=1, help="copies of the request decoding together (≤ --slots)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    threads = engine_threads(None)
    config = EngineConfig(threads=threads, max_model_len=2048, slots=args.slots)
    folder = ModelFolder(args.model, config.max_model_len)
    tokenizer = folder.tokenizer
    ids = tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}]))
    plain = PlainGenerator(args.model, threads=threads)
    decoder = OnnxDecoder(folder.model_path, folder.config, threads, args.slots, 2048)
    engine = BatchedEngine(folder, config)
    rows = args.rows
    logger.info(
        "CPU: %s; %d threads; %s; prompt %d tokens; %d row(s)",
        host_cpu().describe(),
        threads,
        args.model.name,
        len(ids),
        rows,
    )

    def run_plain() -> float:
        import onnxruntime_genai as og

        params = og.GeneratorParams(plain.model)
        length = len(ids) + args.max_tokens
        params.set_search_options(batch_size=rows, max_length=length, min_length=length)
        generator = og.Generator(plain.model, params)

        def prefill() -> list[int]:
            generator.append_tokens(np.asarray([ids] * rows, dtype=np.int32))
            return [0] * rows

        def step(tokens: list[int], length: int) -> list[int]:
            generator.generate_next_token()
            return tokens

        return decode_rate(prefill, step, args.max_tokens)

    def run_decoder() -> float:
        def prefill() -> list[int]:
            return [int(t) for t in np.argmax(decoder.prefill([ids] * rows, 0), axis=-1)]

        def step(tokens: list[int], length: int) -> list[int]:
            return [int(t) for t in np.argmax(decoder.decode(tokens, [len(ids) + length] * rows), axis=-1)]

        return decode_rate(prefill, step, args.max_tokens)

    def run_batched() -> float:
        async def go() -> float:
            # The end tokens pushed out of reach, so every arm decodes max_tokens (the others ignore them too).
            no_end = tuple((int(t), -100.0) for t in tokenizer.eos_token_ids)
            request = GenerationRequest(ids, args.max_tokens, SamplingParams(temperature=0.0, logit_bias=no_end))

            async def one() -> list[float]:
                return [time.perf_counter() async for _ in engine.generate(request)]

            times = await asyncio.gather(*(one() for _ in range(rows)))
            if rows == 1:  # the first token comes from the prefill, as in the other arms
                return (len(times[0]) - 1) / (times[0][-1] - times[0][0])
            return steady_rate(times)

        return asyncio.run(go())

    arms = {"plain": run_plain, "decoder": run_decoder, "batched": run_batched}
    for arm in arms.values():  # warm-up
        arm()
    rates: dict[str, list[float]] = {name: [] for name in arms}
    loads = []
    for round_ in range(args.rounds):
        names = list(arms)[round_ % 3 :] + list(arms)[: round_ % 3]
        for name in names:
            rates[name].append(arms[name]())
        loads.append(load_average())
        logger.info("round %d: %s", round_, ", ".join(f"{n} {rates[n][-1]:.1f}" for n in arms))
    engine.close()
    for name in arms:
        logger.info("%-8s median %.2f tok/s (%s)", name, statistics.median(rates[name]), rates[name])
    for a, b in (("decoder", "plain"), ("batched", "decoder"), ("batched", "plain")):
        ratio = statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))
        logger.info("%s / %s = %.3f (median of paired ratios)", a, b, ratio)
    logger.info("load average per round: %s", loads)


if __name__ == "__main__":
    main()
