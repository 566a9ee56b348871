"""Time to the first token at one stream, our chat service against llama-server Q4_K_M and Q4_0 on the same GGUF,
each reached directly (no proxy), the same prompts interleaved: where a long prompt's TTFT gap comes from.

    python -m bench.ttft_peers --model qwen2.5-coder-1.5b-instruct [--prompt code_edit] [--rounds 8]

Each request streams greedy with max_tokens 2. llama-server reports its own prompt time (`timings.prompt_ms`, the
prompt tokens it did not reuse), ours the prompt and cached tokens (usage): so the table says how much of each TTFT
is the prefill itself. Every server first answers one request with the same system prompt, so each reuses it.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from ortserve_common.models_dir import models_dir

from bench import traffic_prompts
from bench.local_stack import SoloChat
from bench.peers import LlamaServer, gguf_files, llama_cpp_bin

logger = logging.getLogger("bench.ttft_peers")
PROMPTS = ("question", "long_answer", "code_edit")


def first_token(client: httpx.Client, base_url: str, model: str, messages: list[dict]) -> tuple[float, dict]:
    """(TTFT in ms, what the server said of the prompt: usage, and llama-server's timings)."""
    body = {"model": model, "messages": messages, "max_tokens": 2, "stream": True, "temperature": 0}
    body["stream_options"] = {"include_usage": True}
    started, first = time.perf_counter(), None
    said: dict = {}
    with client.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[len("data: ") :])
            if first is None and chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter()
            said |= {key: chunk[key] for key in ("usage", "timings") if chunk.get(key)}
    if first is None:
        raise RuntimeError(f"{base_url} streamed no content")
    return 1000 * (first - started), said


def new_tokens(said: dict) -> int:
    """The prompt tokens the server prefilled for this request (not reused from an earlier one)."""
    if "timings" in said:
        return int(said["timings"].get("prompt_n", 0))
    usage = said.get("usage") or {}
    return usage.get("prompt_tokens", 0) - (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)


def describe(said: dict) -> str:
    if "timings" in said:
        return f"{new_tokens(said)} new, prompt_ms {said['timings'].get('prompt_ms', 0):.0f}"
    return f"{new_tokens(said)} new of {(said.get('usage') or {}).get('prompt_tokens')}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--prompt", choices=PROMPTS, default="code_edit", help="which traffic prompt (bench.traffic)")
    parser.add_argument("--rounds", type=int, default=8, help="prompts, each sent to every server in turn")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache/ortserve")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    prompt = getattr(traffic_prompts, args.prompt)
    bin_dir = llama_cpp_bin(args.cache_dir)
    ggufs = gguf_files(args.cache_dir, bin_dir, args.model, models_dir(args.cache_dir))
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        run = Path(tmp)
        settings = {"CHAT_MODEL_ID": args.model, "CHAT_MAX_MODEL_LEN": "4096"}
        chat = stack.enter_context(SoloChat(run / "chat", models_dir(args.cache_dir) / args.model, settings))
        servers = {"ours": f"{chat.url}/v1"}
        for quant, gguf in ggufs.items():
            servers[f"llama-server {quant}"] = stack.enter_context(
                LlamaServer(bin_dir / "llama-server", gguf, run / f"{quant}.log")
            ).base_url
        ttfts: dict[str, list[float]] = {name: [] for name in servers}
        per_token: dict[str, list[float]] = {name: [] for name in servers}
        with httpx.Client(timeout=600) as client:
            for base_url in servers.values():
                first_token(client, base_url, args.model, prompt(args.rounds + 1))
            for index in range(args.rounds):
                for name, base_url in servers.items():
                    ttft, said = first_token(client, base_url, args.model, prompt(index))
                    ttfts[name].append(ttft)
                    per_token[name].append(ttft / max(new_tokens(said), 1))
                    logger.info("%s, prompt %d: TTFT %.0f ms (%s)", name, index, ttft, describe(said))
    for name, values in ttfts.items():
        ratio = statistics.median(ttfts["ours"]) / statistics.median(values)
        token_ms = statistics.median(per_token[name])
        token_ratio = statistics.median(per_token["ours"]) / token_ms
        logger.info(
            "%s: TTFT median %.0f ms, ours / this %.2f×; %.1f ms per new prompt token, ours / this %.2f×",
            name, statistics.median(values), ratio, token_ms, token_ratio,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
