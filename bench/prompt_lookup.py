"""What prompt-lookup speculation gains, and costs: Qwen2.5-Coder-0.5B, greedy, with it on against off.

Two workloads: a code edit (a given function rewritten with one small change, "the whole function only": most of
the answer repeats the prompt) and open chat (answers written from scratch). Each at 1, 2 and 4 concurrent streams
(each stream its own prompt), on the batched engine in-process (no HTTP), and with --http through the chat service
(a process of its own, the request's `speculative` field turning it on or off). Every configuration runs once per
round, in an order rotated round to round, so a neighbour's load falls on all of them; the report gives each
one's median aggregate tok/s (completion tokens over the wall time from the first request to the last token) and
on / off, with the CPU and the load average beside it.

    .venv/bin/python -m bench.prompt_lookup
    .venv/bin/python -m bench.prompt_lookup --http --streams 1 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
import uuid
from pathlib import Path

import httpx
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.config import EngineConfig
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.types import GenerationRequest, SamplingParams
from ortserve_common.cpu import engine_threads, host_cpu
from ortserve_common.models_dir import models_dir
from ortserve_testing.processes import ServiceProcess, free_port

from bench.cpu_monitor import load_average

logger = logging.getLogger("bench.prompt_lookup")

MODEL = models_dir() / "qwen2.5-coder-0.5b-instruct"
EDIT = "Change only what is asked and reply with the whole function, nothing else.\n\n{change}\n\n```python\n{code}```"
FUNCTIONS = [
    (
        "Rename the parameter `items` to `entries`.",
        '''def summarize(items, key=None):
    """Count, total and mean of a list of numbers, or of each item's `key` field."""
    values = [item[key] if key is not None else item for item in items]
    if not values:
        return {"count": 0, "total": 0, "mean": None}
    total = 0
    for value in values:
        if value is None:
            continue
        total += value
    count = len([v for v in values if v is not None])
    return {"count": count, "total": total, "mean": total / count if count else None}
''',
    ),
    (
        "Make the default timeout 30 seconds instead of 10.",
        '''def fetch_json(session, url, params=None, timeout=10, retries=3):
    """GET a URL and return its JSON body, retrying on connection errors."""
    last_error = None
    for attempt in range(retries):
        try:
            response = session.get(url, params=params, timeout=timeout)
            response.raise_for_status()
            return response.json()
        except ConnectionError as error:
            last_error = error
            time.sleep(2 ** attempt)
    raise RuntimeError(f"{url} failed after {retries} attempts") from last_error
''',
    ),
    (
        "Skip lines that start with `#`.",
        '''def parse_config(text):
    """Parse `key = value` lines into a dict; values are stripped strings."""
    config = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if "=" not in line:
            raise ValueError(f"line {number}: expected key = value")
        key, value = line.split("=", 1)
        config[key.strip()] = value.strip()
    return config
''',
    ),
    (
        "Add a docstring line saying the list is sorted in place.",
        """def insertion_sort(values):
    for i in range(1, len(values)):
        current = values[i]
        j = i - 1
        while j >= 0 and values[j] > current:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = current
    return values
""",
    ),
]
CHAT = [
    "Explain the difference between processes and threads, with an example of when to use each.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "What are the main causes of inflation, and how do central banks respond to it?",
    "Give me advice on learning to play the guitar as an adult beginner.",
]
WORKLOADS = {"code-edit": [EDIT.format(change=c, code=f) for c, f in FUNCTIONS], "open-chat": CHAT}
GREEDY = SamplingParams(temperature=0.0)


def _in_process(engine: BatchedEngine, prompts: list[list[int]], on: bool, max_tokens: int) -> float:
    async def one(prompt: list[int]) -> int:
        request = GenerationRequest(prompt, max_tokens, GREEDY, speculative_tokens=None if on else 0)
        return len([e async for e in engine.generate(request)])

    async def together() -> int:
        return sum(await asyncio.gather(*(one(p) for p in prompts)))

    start = time.perf_counter()
    tokens = asyncio.run(together())
    return tokens / (time.perf_counter() - start)


def _over_http(base_url: str, messages: list[str], on: bool, max_tokens: int) -> float:
    speculative = {"method": "ngram" if on else "none"}

    async def one(client: httpx.AsyncClient, text: str) -> int:
        # A nonce first, so that no run is served from another's prefix cache.
        body = {
            "model": "qwen",
            "messages": [{"role": "user", "content": f"[{uuid.uuid4().hex[:8]}] {text}"}],
            "temperature": 0,
            "max_tokens": max_tokens,
            "speculative": speculative,
        }
        reply = await client.post(f"{base_url}/v1/chat/completions", json=body)
        reply.raise_for_status()
        return int(reply.json()["usage"]["completion_tokens"])

    async def together() -> int:
        async with httpx.AsyncClient(timeout=600) as client:
            return sum(await asyncio.gather(*(one(client, m) for m in messages)))

    start = time.perf_counter()
    tokens = asyncio.run(together())
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--max-rows", type=int, default=1, help="CHAT_PROMPT_LOOKUP_MAX_ROWS")
    parser.add_argument("--http", action="store_true", help="through the chat service instead of in-process")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    threads = engine_threads(None)
    slots = max(args.streams)
    logger.info("CPU: %s; %d engine threads; load average %.1f", host_cpu().describe(), threads, load_average())
    service: ServiceProcess | None = None
    engine: BatchedEngine | None = None
    if args.http:
        port = free_port()
        env = {
            **os.environ,
            "CHAT_MODEL_PATH": str(args.model),
            "CHAT_MODEL_ID": "qwen",
            "CHAT_PORT": str(port),
            "CHAT_HOST": "127.0.0.1",
            "CHAT_MAX_BATCH_SIZE": str(slots),
            "CHAT_MAX_MODEL_LEN": "2048",
            "CHAT_PROMPT_LOOKUP_MAX_ROWS": str(args.max_rows),
            "CHAT_DATA_DIR": f"/tmp/bench-prompt-lookup-{port}",
        }
        service = ServiceProcess("chat_service", port, env, Path(f"/tmp/bench-prompt-lookup-{port}.log")).start(300)

        def run(workload: str, n: int, on: bool) -> float:
            assert service is not None
            return _over_http(service.base_url, WORKLOADS[workload][:n], on, args.max_tokens)

    else:
        config = EngineConfig(threads=threads, max_model_len=2048, slots=slots, prompt_lookup_max_rows=args.max_rows)
        folder = ModelFolder(args.model, config.max_model_len)
        engine = BatchedEngine(folder, config)
        tok = folder.tokenizer
        encoded = {
            name: [tok.encode(tok.apply_chat_template([{"role": "user", "content": p}])) for p in prompts]
            for name, prompts in WORKLOADS.items()
        }

        def run(workload: str, n: int, on: bool) -> float:
            assert engine is not None
            before = engine.stats()
            tok_s = _in_process(engine, encoded[workload][:n], on, args.max_tokens)
            after = engine.stats()
            calls = after.spec_verify_steps - before.spec_verify_steps
            if calls:
                accepted = after.spec_accepted_tokens - before.spec_accepted_tokens
                drafted = after.spec_draft_tokens - before.spec_draft_tokens
                logger.info(
                    "  %d verify calls, %d/%d drafts accepted, %.2f tokens per call",
                    calls,
                    accepted,
                    drafted,
                    (calls + accepted) / calls,
                )
            return tok_s

    configs = [(w, n, on) for w in WORKLOADS for n in args.streams for on in (False, True)]
    results: dict[tuple[str, int, bool], list[float]] = {c: [] for c in configs}
    loads: list[float] = []
    logger.info(
        "%s, %d tokens a stream at most, %d rounds",
        "chat service" if args.http else "in-process",
        args.max_tokens,
        args.rounds,
    )
    try:
        run("open-chat", 1, False)  # warm-up
        for round_ in range(args.rounds):
            shift = round_ % len(configs)
            for workload, n, on in configs[shift:] + configs[:shift]:
                tok_s = run(workload, n, on)
                results[(workload, n, on)].append(tok_s)
                loads.append(load_average())
                logger.info("round %d: %s, %d streams, lookup %s: %.2f tok/s", round_, workload, n, on, tok_s)
    finally:
        if engine is not None:
            engine.close()
        if service is not None:
            service.stop()
    median = {c: statistics.median(v) for c, v in results.items()}
    logger.info("load average over the run: %.1f-%.1f", min(loads), max(loads))
    logger.info("| workload | streams | off tok/s | on tok/s | on / off (median) | on / off per round |")
    logger.info("|---|---|---|---|---|---|")
    for workload, n, _ in configs[::2]:
        off_runs, on_runs = results[(workload, n, False)], results[(workload, n, True)]
        paired = ", ".join(f"{b / a:.2f}" for a, b in zip(off_runs, on_runs, strict=True))
        logger.info(
            "| %s | %d | %.2f | %.2f | %.2f× | %s |",
            workload,
            n,
            median[(workload, n, False)],
            median[(workload, n, True)],
            median[(workload, n, True)] / median[(workload, n, False)],
            paired,
        )


if __name__ == "__main__":
    main()
