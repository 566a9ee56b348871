"""Resident memory of the chat service and of llama-server on the same GGUF, after the same small workload, one
server at a time: `python -m bench.memory_peers [--model qwen2.5-coder-0.5b-instruct]`. Prints a Markdown table.

Workload: `--rounds` rounds of 8 concurrent greedy chat requests, each a unique nonce and ~200 tokens of prompt, 64
tokens out. RSS (VmRSS) and its peak (VmHWM) are read from /proc when the last round is done. The chat service runs
with its defaults (CHAT_PREFIX_CACHE_MB included, unless --chat-env overrides them); llama-server with the bench's
own arguments (bench/peers.py: -np 8 -c 8192 --cont-batching, its default prompt cache in RAM).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import uuid
from pathlib import Path

import httpx
from ortserve_common.cpu import host_cpu
from ortserve_common.models_dir import models_dir
from ortserve_testing.processes import ServiceProcess, free_port

from bench.peers import LlamaServer, gguf_files, rss_mb

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache/ortserve"
logger = logging.getLogger("bench.memory_peers")


async def workload(base_url: str, model: str, rounds: int) -> int:
    words = "one two three four five six seven eight nine ten ".split()
    # A new connection per request: llama-server may close a kept-alive one after answering (bench/clients.py).
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def one() -> int:
            prompt = f"{uuid.uuid4()} Count on: " + " ".join(words * 18)
            body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 64}
            response = await client.post(f"{base_url}/chat/completions", json={**body, "temperature": 0})
            response.raise_for_status()
            return int(response.json()["usage"]["completion_tokens"])

        total = 0
        for _ in range(rounds):
            total += sum(await asyncio.gather(*(one() for _ in range(8))))
        return total


def measure_chat(model: str, rounds: int, env: dict[str, str]) -> dict[str, float]:
    port = free_port()
    environment = {
        **os.environ,
        "CHAT_MODEL_PATH": str(models_dir() / model),
        "CHAT_MODEL_ID": model,
        "CHAT_MAX_MODEL_LEN": "4096",  # as the real-size bench serves it (bench/run.py)
        "CHAT_PORT": str(port),
        "CHAT_HOST": "127.0.0.1",
        "CHAT_DATA_DIR": f"/tmp/memory-peers-{port}",
        **env,
    }
    server = ServiceProcess("chat_service", port, environment, Path(f"/tmp/memory-peers-chat-{port}.log")).start(120)
    try:
        assert server.proc is not None
        loaded = rss_mb(server.proc.pid)["rss_mb"]
        tokens = asyncio.run(workload(f"{server.base_url}/v1", model, rounds))
        return {"loaded_mb": loaded, **rss_mb(server.proc.pid), "tokens": tokens}
    finally:
        server.stop()


def measure_llama(binary: Path, gguf: Path, model: str, rounds: int) -> dict[str, float]:
    with LlamaServer(binary, gguf, Path(f"/tmp/memory-peers-{gguf.stem}.log")) as server:
        loaded = rss_mb(server.proc.pid)["rss_mb"]
        tokens = asyncio.run(workload(server.base_url, model, rounds))
        return {"loaded_mb": loaded, **rss_mb(server.proc.pid), "tokens": tokens}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chat-env", action="append", default=[], help="NAME=VALUE for the chat service (repeat)")
    parser.add_argument("--chat-only", action="store_true", help="leave llama-server out")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bins = sorted(CACHE.glob("llama.cpp-*/bin"))
    env = dict(item.split("=", 1) for item in args.chat_env)
    rows = [
        ("chat service" + "".join(f", {k}={v}" for k, v in env.items()), measure_chat(args.model, args.rounds, env))
    ]
    if bins and not args.chat_only:
        for quant, gguf in gguf_files(CACHE, bins[-1], args.model, models_dir()).items():
            rows.append(
                (f"llama-server {quant}", measure_llama(bins[-1] / "llama-server", gguf, args.model, args.rounds))
            )
    else:
        logger.info("no llama-server binary under %s/llama.cpp-*/bin: the chat service alone", CACHE)
    lines = [
        f"{args.model}, {args.rounds} rounds of 8 concurrent greedy requests (~200 tokens in, 64 out):",
        "",
        "| server | RSS loaded MB | RSS after MB | peak RSS MB | tokens out |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {r['loaded_mb']:.0f} | {r['rss_mb']:.0f} | {r['peak_mb']:.0f} | {r['tokens']:.0f} |"
        for name, r in rows
    ]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines += ["", f"Measured {when} on {host_cpu().describe()}."]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
