"""Prompt lookup with the model's default samplers, in-process: `off`; `on` (a probation of 16 scored one-token
steps, then drafts, and rows give up when the lookup keeps missing); `probation-8` (the same after 8); `no-probation`
(drafts from the first step, giving up from the 16th token on); and `always` (drafts from the first step, never
giving up); interleaved per prompt.

    python -m bench.lookup_give_up [--model qwen2.5-coder-0.5b-instruct] [--workload chat|code] [--rounds 2]
                                   [--max-tokens 128] [--arms off,on,probation-8,no-probation,always]

Each request is seeded and sent alone to one BatchedEngine (no HTTP); the arms take turns per prompt, the order
rotated. Reported: each arm's median decode rate (tokens after the first over the time after it), the engine's
verify calls, drafts, drafts taken and rows that gave up, and the median over prompts of each arm's decode rate over
the same prompt's with lookup off. Prompts: bench.prompt_lookup's open-chat questions and four more, or its code
edits (twice).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import statistics
import time

from chat_service.engine.batched import speculation
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.config import EngineConfig
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.types import GenerationRequest, SamplingParams
from ortserve_common.cpu import host_cpu
from ortserve_common.models_dir import models_dir

from bench.cpu_monitor import load_average
from bench.prompt_lookup import CHAT, WORKLOADS

logger = logging.getLogger("bench.lookup_give_up")
MORE_CHAT = [
    "How do vaccines train the immune system?",
    "Describe a good morning routine for productivity.",
    "What should I consider when buying a used car?",
    "Summarize the plot of a classic detective novel you like.",
]
ARMS = ("off", "on", "probation-8", "no-probation", "always")
GIVE_UP_AFTER = speculation.GIVE_UP_AFTER


def decode_rate(engine: BatchedEngine, prompt: list[int], sampling: SamplingParams, max_tokens: int, on: bool):
    async def run() -> tuple[int, float]:
        request = GenerationRequest(prompt, max_tokens, sampling, speculative_tokens=8 if on else 0)
        count, first = 0, 0.0
        async for _ in engine.generate(request):
            count += 1
            if count == 1:
                first = time.perf_counter()
        return count, (count - 1) / (time.perf_counter() - first) if count > 1 else 0.0

    return asyncio.run(run())


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--workload", choices=["chat", "code"], default="chat")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--arms", default="off,on,no-probation,always", help="a comma-separated subset of " + ",".join(ARMS)
    )
    args = parser.parse_args()
    arms = tuple(arm for arm in ARMS if arm in args.arms.split(","))
    if "off" not in arms:
        parser.error("--arms needs off: every ratio is over it")
    config = EngineConfig(threads=2, max_model_len=2048, slots=8)
    folder = ModelFolder(models_dir() / args.model, config.max_model_len)
    engine = BatchedEngine(folder, config)
    texts = WORKLOADS["code-edit"] * 2 if args.workload == "code" else [*CHAT, *MORE_CHAT]
    tokenizer = folder.tokenizer
    prompts = [tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": t}])) for t in texts]
    rates: dict[str, list[float]] = {arm: [] for arm in arms}
    counts = {arm: [0, 0, 0, 0] for arm in arms}
    # The probation is the engine's setting, read when a row first decodes alone: set per arm on its scheduler.
    arm_configs = {arm: dataclasses.replace(config, prompt_lookup_probation=0) for arm in ("no-probation", "always")}
    arm_configs["probation-8"] = dataclasses.replace(config, prompt_lookup_probation=8)
    load = load_average()
    try:
        for round_ in range(args.rounds):
            for i, prompt in enumerate(prompts):
                # The model's defaults for Qwen2.5-Coder (its manifest), seeded per prompt and round.
                sampling = SamplingParams(
                    temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05, seed=1000 * round_ + i
                )
                turn = (i + round_) % len(arms)
                for arm in arms[turn:] + arms[:turn]:
                    speculation.GIVE_UP_AFTER = 10**9 if arm == "always" else GIVE_UP_AFTER
                    engine._scheduler._config = arm_configs.get(arm, config)
                    before = engine.stats()
                    _, rate = decode_rate(engine, prompt, sampling, args.max_tokens, arm != "off")
                    after = engine.stats()
                    rates[arm].append(rate)
                    for k, field in enumerate(
                        ("spec_verify_steps", "spec_draft_tokens", "spec_accepted_tokens", "spec_rows_given_up")
                    ):
                        counts[arm][k] += getattr(after, field) - getattr(before, field)
    finally:
        speculation.GIVE_UP_AFTER = GIVE_UP_AFTER
        engine.close()
    logger.info("CPU: %s; load average %s at the start, %s at the end", host_cpu().describe(), load, load_average())
    shape = (args.model, args.workload, len(prompts), args.rounds, args.max_tokens)
    logger.info("%s, %s, %d prompts × %d rounds, %d tokens at most", *shape)
    logger.info("| arm | median decode tok/s | verify calls | drafted | taken | rows given up | over off (median) |")
    logger.info("|---|---|---|---|---|---|---|")
    for arm in arms:
        ratio = statistics.median(r / o for r, o in zip(rates[arm], rates["off"], strict=True) if r and o)
        logger.info("| %s | %.1f | %d | %d | %d | %d | %.3f |", arm, statistics.median(rates[arm]), *counts[arm], ratio)


if __name__ == "__main__":
    main()
