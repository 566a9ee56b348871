"""`make bench-spin`: the chat engines' onnxruntime thread spinning policies (CHAT_ENGINE_SPIN, CHAT_ENGINE_SPIN_US,
CHAT_ENGINE_DYNAMIC_BLOCK_BASE) A/B'd through nginx, with the event loop, nginx and the client on the same cores.

    python -m bench.thread_spin [--model ID] [--policies default off stop ...] [--concurrency 1 8] [--repeats 3]

One local stack (nginx, registry, chat serving --model alone); before each measurement the chat service is restarted
under supervisord with the policy's settings, everything else kept running. Every repeat measures each policy once, at
every concurrency, the order rotated repeat to repeat (A, B, A, B…); each phase sends short questions with the model's
default samplers (no sampler field: the manifest's defaults apply), each with a unique nonce. Ratios to the first
policy (the baseline) are paired within a repeat, then the median is taken. The CPU that the chat process, nginx and
the client used per output token is recorded beside each phase, and so is what other processes used (the noise).
Report: docs/benchmarks/<model>-thread-spin.md; raw rows: results/bench/<time>-thread-spin/results.json.
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
import urllib.request
from pathlib import Path

from bench import clients, environment, thread_spin_report, traffic_prompts
from bench.clients import ChatTarget
from bench.cpu_monitor import CpuMonitor, load_average, wait_for_quiet
from bench.local_stack import LocalStack, descendants
from bench.run import phase_result, stop_cleanly

ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("bench.thread_spin")

UNSET = {"CHAT_ENGINE_SPIN": "default", "CHAT_ENGINE_SPIN_US": "", "CHAT_ENGINE_DYNAMIC_BLOCK_BASE": ""}
# Each policy's chat settings, over UNSET (so a value in the caller's environment never leaks into another policy).
POLICIES: dict[str, dict[str, str]] = {
    "default": {},
    "off": {"CHAT_ENGINE_SPIN": "off"},
    "stop": {"CHAT_ENGINE_SPIN": "stop"},
    "block4": {"CHAT_ENGINE_DYNAMIC_BLOCK_BASE": "4"},
    "stop-block4": {"CHAT_ENGINE_SPIN": "stop", "CHAT_ENGINE_DYNAMIC_BLOCK_BASE": "4"},
    "spin200us": {"CHAT_ENGINE_SPIN_US": "200"},
    "stop-spin200us": {"CHAT_ENGINE_SPIN": "stop", "CHAT_ENGINE_SPIN_US": "200"},
}
PROMPT = "defaults"  # the one kind of request measured: short questions, the model's default samplers


class ChatUnderPolicy:
    """The stack's chat program, restarted by supervisord with a policy's settings added to its environment line."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.conf = stack.run_dir / "supervisord.conf"
        lines = self.conf.read_text().splitlines()
        start = lines.index("[program:chat]")
        self.line = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("environment="))
        self.base = lines[self.line]

    def restart(self, settings: dict[str, str], timeout_s: float = 300) -> float:
        """Restart chat with `settings`; returns once it answers /ready (the seconds it took)."""
        lines = self.conf.read_text().splitlines()
        lines[self.line] = self.base + "".join(f',{key}="{value}"' for key, value in settings.items())
        self.conf.write_text("\n".join(lines) + "\n")
        before = self.pid()
        started = time.monotonic()
        self.stack.ctl("reread")
        self.stack.ctl("update", "chat")  # a changed program is stopped and started again with its new environment
        while time.monotonic() - started < timeout_s:
            if self.pid() not in (0, before) and self._ready():
                return time.monotonic() - started
            time.sleep(0.5)
        raise RuntimeError(f"chat did not come back within {timeout_s:.0f}s with {settings}:\n{self.stack.logs()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.stack.chat_url + "/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def pid(self) -> int:
        text = self.stack.ctl("pid", "chat").strip()
        return int(text) if text.isdigit() else 0

    def proxy_pids(self) -> set[int]:
        text = self.stack.ctl("pid", "proxy").strip()
        return descendants(int(text)) if text.isdigit() and text != "0" else set()


async def measure_policy(
    args: argparse.Namespace, target: ChatTarget, chat: ChatUnderPolicy, stack: LocalStack, policy: str, repeat: int
) -> list[dict]:
    restart_s = chat.restart(UNSET | POLICIES[policy])
    await clients.closed_loop_chat(target, [traffic_prompts.question(i) for i in range(2)], 2, 8, {})  # warm-up
    chat_pids = descendants(chat.pid())
    everything = CpuMonitor(lambda: descendants(os.getpid()) | stack.pids())
    parts = {
        "chat": CpuMonitor(lambda: chat_pids),
        "nginx": CpuMonitor(chat.proxy_pids),
        "client": CpuMonitor(lambda: {os.getpid()}),
    }
    rows = []
    for c in args.concurrency:
        conversations = [traffic_prompts.question(i) for i in range(max(args.min_requests, c * args.rounds))]
        waited_s = await wait_for_quiet(everything, args.quiet_wait_s)
        for monitor in (everything, *parts.values()):
            monitor.start()
        phase = await clients.closed_loop_chat(target, conversations, c, args.max_tokens, {})
        cpu = everything.stop()
        used = {name: monitor.stop() for name, monitor in parts.items()}
        result = phase_result(phase)
        tokens = max(sum(result["completion_tokens"]), 1)
        cpu_ms_per_token = {name: 1000 * u.own_cores * u.seconds / tokens for name, u in used.items()}
        rows.append(
            {"target": policy, "concurrency": c, "prompt": PROMPT, "repeat": repeat, "settings": POLICIES[policy]}
            | result
            | {"cpu": cpu.as_dict(), "cpu_ms_per_token": cpu_ms_per_token, "waited_for_quiet_s": waited_s}
            | {"chat_restart_s": restart_s}
        )
        logger.info(
            "repeat %d c=%d %-14s %6.1f tok/s, decode p50 %s, chat %.2f / nginx %.2f / client %.2f CPU ms per token, "
            "others' CPU %.2f cores%s",
            *(repeat, c, policy, result["output_tok_s"], thread_spin_report.median_text(result["decode_tok_s"])),
            *(cpu_ms_per_token["chat"], cpu_ms_per_token["nginx"], cpu_ms_per_token["client"], cpu.other_cores),
            f"  ERRORS {result['errors'][:2]}" if result["errors"] else "",
        )
    return rows


async def main_async(args: argparse.Namespace) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_dir = ROOT / "results/bench" / f"{stamp}-thread-spin"
    results_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "model": args.model, "args": vars(args)}
    results["policies"] = {name: POLICIES[name] for name in args.policies}
    results["load_1m_at_start"] = load_average()
    rows: list[dict] = []
    with LocalStack(results_dir / "run", {"CHAT_MODELS": args.model}) as stack:
        target = ChatTarget("proxy", stack.proxy_url + "/v1", args.model, stack.api_key, stack.ca)
        chat = ChatUnderPolicy(stack)
        results["environment"] = environment.describe(None)
        for repeat in range(args.repeats):
            order = args.policies[repeat % len(args.policies) :] + args.policies[: repeat % len(args.policies)]
            for policy in order:
                rows += await measure_policy(args, target, chat, stack, policy, repeat)
        results["chat"] = rows
    results["load_1m_at_end"] = load_average()
    (results_dir / "results.json").write_text(json.dumps(results, indent=1))
    out = Path(args.out) if args.out else ROOT / f"docs/benchmarks/{args.model}-thread-spin.md"
    summary = thread_spin_report.write(results, out)
    sys.stdout.write(f"{summary}\nreport: {out}\nraw results: {results_dir / 'results.json'}\n")
    return 1 if any(row["errors"] for row in rows) else 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", help="a chat model of the manifest")
    parser.add_argument(
        "--policies",
        nargs="+",
        default=["default", "off", "stop", "block4"],
        help=f"the first is the baseline; from {', '.join(POLICIES)}",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every policy")
    parser.add_argument("--rounds", type=int, default=2, help="requests per stream in a phase")
    parser.add_argument("--min-requests", type=int, default=6, help="requests per phase at least")
    parser.add_argument("--max-tokens", type=int, default=128, help="max_tokens of each request")
    parser.add_argument("--quiet-wait-s", type=float, default=10, help="longest wait for other work to go quiet")
    parser.add_argument("--out", help="the markdown report (default docs/benchmarks/<model>-thread-spin.md)")
    args = parser.parse_args()
    unknown = [name for name in args.policies if name not in POLICIES]
    if unknown or len(set(args.policies)) < 2 or len(set(args.policies)) != len(args.policies):
        parser.error(f"--policies: two or more distinct names from {', '.join(POLICIES)} (unknown: {unknown})")
    signal.signal(signal.SIGTERM, stop_cleanly)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
