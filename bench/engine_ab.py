"""One stream, in this process, no HTTP: where the batched engine's single-stream decode time goes.

Three arms decode the same greedy request (the same prompt ids, --max-tokens new tokens), interleaved round by
round so that a busy machine moves them alike:

- plain: ONNX Runtime GenAI's own loop (og.Generator), what the generator engine runs;
- decoder: the batched engine's onnxruntime session alone (engine/batched/decoder.OnnxDecoder), prefill then one
  decode call per token with an argmax between: the same graph and KV slots, no scheduler, no sampler, no threads;
- batched: the whole BatchedEngine (scheduler thread, sampler, detokenizer, events to asyncio).

plain against decoder is what the session and its KV layout cost; decoder against batched is what the scheduler
around it costs. Ratios are paired within a round; the median is reported, with the CPU and the load average.

    .venv/bin/python -m bench.engine_ab [--model DIR] [--rounds 5] [--max-tokens 128]
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


def decode_rate(prefill: Callable[[], int], step: Callable[[int, int], int], max_tokens: int) -> float:
    """Tokens per second over the decode steps only (the first token comes from the prefill)."""
    token, length = prefill(), 0
    start = time.perf_counter()
    for length in range(max_tokens - 1):
        token = step(token, length)
    return (max_tokens - 1) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=models_dir() / "qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--slots", type=int, default=8, help="the batched engine's KV slots (CHAT_MAX_BATCH_SIZE)")
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
    logger.info("CPU: %s; %d threads; %s; prompt %d tokens", host_cpu().describe(), threads, args.model.name, len(ids))

    def run_plain() -> float:
        import onnxruntime_genai as og

        params = og.GeneratorParams(plain.model)
        params.set_search_options(max_length=len(ids) + args.max_tokens, min_length=len(ids) + args.max_tokens)
        generator = og.Generator(plain.model, params)

        def prefill() -> int:
            generator.append_tokens(np.asarray(ids, dtype=np.int32))
            return 0

        def step(token: int, length: int) -> int:
            generator.generate_next_token()
            return 0

        return decode_rate(prefill, step, args.max_tokens)

    def run_decoder() -> float:
        def prefill() -> int:
            return int(np.argmax(decoder.prefill([ids], 0)[0]))

        def step(token: int, length: int) -> int:
            return int(np.argmax(decoder.decode([token], [len(ids) + length])[0]))

        return decode_rate(prefill, step, args.max_tokens)

    def run_batched() -> float:
        async def go() -> float:
            # The end tokens pushed out of reach, so every arm decodes max_tokens (the others ignore them too).
            no_end = tuple((int(t), -100.0) for t in tokenizer.eos_token_ids)
            request = GenerationRequest(ids, args.max_tokens, SamplingParams(temperature=0.0, logit_bias=no_end))
            first = None
            count = 0
            async for _ in engine.generate(request):
                count += 1
                if first is None:
                    first = time.perf_counter()
            assert first is not None
            return (count - 1) / (time.perf_counter() - first)

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
