"""Per-replica figures for docs/SCALING.md: RSS of each service on its real model, plus a short throughput check.

    .venv/bin/python deploy/k8s/measure.py [--chat-model DIR] [--out results/k8s-measure.json]

Starts the registry, chat and embeddings as plain processes on free ports (no proxy: these are per-replica figures),
loads each with a bounded burst of requests, and reads VmRSS (now) and VmHWM (peak) from /proc/PID/status. The
throughput here is a rough figure on a shared machine; `make bench` (docs/BENCHMARKS.md) is the careful one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from ortserve_common.models_dir import models_dir

MODELS_DIR = models_dir()
# A counting prompt keeps a small model going to max_tokens, so every stream decodes the same number of tokens.
PROMPT = "[{i}] Count upwards, one number per item: 1, 2, 3, 4, 5,"
# About 900 prompt tokens: fills the KV cache far enough to see its cost per position in the RSS.
LONG_PROMPT = "[{i}] " + "The quick brown fox jumps over the lazy dog near the river bank. " * 70 + "Count: 1, 2, 3,"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory_mib(pid: int) -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (fields 14 and 15 of /proc/PID/stat, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, work: object) -> dict[str, float]:
    """Run a burst; add the cores the service process kept busy meanwhile (what a CPU-based HPA sees)."""
    cpu, wall = cpu_seconds(pid), time.perf_counter()
    result = asyncio.run(work)  # type: ignore[arg-type]
    result["service_cores"] = round((cpu_seconds(pid) - cpu) / (time.perf_counter() - wall), 2)
    return result


def start(module: str, env: dict[str, str], ready_url: str, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module], env={**os.environ, **env}, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{module} exited: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    raise RuntimeError(f"{module} not ready in 180 s")


async def chat_burst(base: str, model: str, streams: int, max_tokens: int, prompt: str = PROMPT) -> dict[str, float]:
    async def one(client: httpx.AsyncClient, i: int) -> int:
        body = {"model": model, "prompt": prompt.format(i=i), "max_tokens": max_tokens, "temperature": 0}
        response = await client.post(f"{base}/v1/completions", json=body, timeout=600)
        response.raise_for_status()
        return response.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=streams)) as client:
        started = time.perf_counter()
        tokens = await asyncio.gather(*(one(client, i) for i in range(streams)))
        seconds = time.perf_counter() - started
    return {"streams": streams, "completion_tokens": sum(tokens), "seconds": round(seconds, 2),
            "output_tok_s": round(sum(tokens) / seconds, 1)}  # fmt: skip


async def prefill(base: str, model: str) -> dict[str, float]:
    """One long prompt, one output token: the prompt tokens per second a replica prefills with nothing else running."""
    async with httpx.AsyncClient() as client:
        body = {"model": model, "prompt": LONG_PROMPT.format(i="prefill"), "max_tokens": 1, "temperature": 0}
        started = time.perf_counter()
        response = await client.post(f"{base}/v1/completions", json=body, timeout=600)
        seconds = time.perf_counter() - started
    tokens = response.raise_for_status().json()["usage"]["prompt_tokens"]
    return {"prompt_tokens": tokens, "seconds": round(seconds, 2), "prompt_tok_s": round(tokens / seconds, 1)}


async def auth_checks(registry: str, key: str, clients: int, seconds: float) -> dict[str, float]:
    """Key checks the registry answers per second: what the proxy asks for on every auth-cache miss."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            response = await client.get(f"{registry}/internal/auth", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 204, response.status_code
            done += 1

    async with httpx.AsyncClient() as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    return {"clients": clients, "checks_per_s": round(done / seconds, 1)}


async def embed_burst(base: str, model: str, clients: int, batch: int, rounds: int) -> dict[str, float]:
    texts = [f"Sentence number {i} about CPUs, caches and memory bandwidth." for i in range(batch)]

    async def worker(client: httpx.AsyncClient) -> None:
        for _ in range(rounds):
            response = await client.post(f"{base}/v1/embeddings", json={"model": model, "input": texts}, timeout=120)
            response.raise_for_status()

    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        seconds = time.perf_counter() - started
    return {"clients": clients, "batch": batch, "sentences_per_s": round(clients * rounds * batch / seconds, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chat-model", type=Path, default=MODELS_DIR / "smollm2-135m-instruct")
    parser.add_argument("--chat-id", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=2, help="CHAT_ENGINE_THREADS / EMBED_ENGINE_THREADS")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--max-batch-size", type=int, default=8, help="CHAT_MAX_BATCH_SIZE (KV slots)")
    parser.add_argument("--max-model-len", type=int, default=2048, help="CHAT_MAX_MODEL_LEN (positions per slot)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ortserve-measure-"))
    ports = {name: free_port() for name in ("models", "chat", "embeddings")}
    registry = f"http://127.0.0.1:{ports['models']}"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    result: dict[str, object] = {
        "load_1m_at_start": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "chat_model": str(args.chat_model),
        "max_tokens": args.max_tokens,
        "max_batch_size": args.max_batch_size,
        "max_model_len": args.max_model_len,
    }
    try:
        procs["models"] = start(
            "models_service",
            {"MODELS_PORT": str(ports["models"]), "MODELS_DATA_DIR": str(work / "data"), "MODELS_API_KEYS": "sk-m"},
            f"{registry}/ready",
            work / "models.log",
        )
        chat = f"http://127.0.0.1:{ports['chat']}"
        procs["chat"] = start(
            "chat_service",
            {
                "CHAT_PORT": str(ports["chat"]),
                "CHAT_MODEL_PATH": str(args.chat_model),
                "CHAT_MODEL_ID": args.chat_id,
                "CHAT_REGISTRY_URL": registry,
                "CHAT_ENGINE_THREADS": str(args.threads),
                "CHAT_MAX_MODEL_LEN": str(args.max_model_len),
                "CHAT_MAX_BATCH_SIZE": str(args.max_batch_size),
            },
            f"{chat}/ready",
            work / "chat.log",
        )
        embed = f"http://127.0.0.1:{ports['embeddings']}"
        procs["embeddings"] = start(
            "embeddings_service",
            {
                "EMBED_PORT": str(ports["embeddings"]),
                "EMBED_MODELS_DIR": str(MODELS_DIR),
                "EMBED_MODELS": "all-minilm-l6-v2=all-minilm-l6-v2",
                "EMBED_REGISTRY_URL": registry,
                "EMBED_ENGINE_THREADS": str(args.threads),
            },
            f"{embed}/ready",
            work / "embeddings.log",
        )
        result["idle_mib"] = {name: memory_mib(proc.pid) for name, proc in procs.items()}
        asyncio.run(chat_burst(chat, args.chat_id, 1, 16))  # warm-up
        chat_pid, embed_pid = procs["chat"].pid, procs["embeddings"].pid
        result["chat"] = [measured(chat_pid, chat_burst(chat, args.chat_id, n, args.max_tokens)) for n in (1, 4, 8)]
        result["prefill"] = asyncio.run(prefill(chat, args.chat_id))
        result["chat_loaded_mib"] = memory_mib(procs["chat"].pid)
        result["chat_long"] = measured(chat_pid, chat_burst(chat, args.chat_id, 8, args.max_tokens, LONG_PROMPT))
        result["embeddings"] = [measured(embed_pid, embed_burst(embed, "all-minilm-l6-v2", 4, 32, 8))]
        result["auth"] = measured(procs["models"].pid, auth_checks(registry, "sk-m", 8, 3.0))
        result["loaded_mib"] = {name: memory_mib(proc.pid) for name, proc in procs.items()}
        result["load_1m_at_end"] = os.getloadavg()[0]
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=60)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
