"""Time to the first token at one stream, our chat service against llama-server Q4_K_M and Q4_0 on the same GGUF,
each reached directly (no proxy), the same prompts interleaved: where a long prompt's TTFT gap comes from.

    python -m bench.ttft_peers --model qwen2.5-coder-1.5b-instruct [--prompt code_edit] [--rounds 8]

Each request streams greedy with max_tokens 2 through bench.clients. Besides the TTFT, each server says how many
prompt tokens it prefilled rather than reused (llama-server's timings, our usage's cached tokens), so the report
gives the time per prefilled token too. Every server first answers one request with the same system prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from ortserve_common.models_dir import models_dir

from bench import traffic_prompts
from bench.clients import ChatTarget, StreamRecord, stream_chat
from bench.local_stack import SoloChat
from bench.peers import LlamaServer, gguf_files, llama_cpp_bin

logger = logging.getLogger("bench.ttft_peers")
PROMPTS = ("question", "long_answer", "code_edit")


async def first_tokens(targets: list[ChatTarget], prompt_kind: str, rounds: int) -> dict[str, list[StreamRecord]]:
    """Each round's prompt to every target in turn, after one warming request each."""
    prompt = getattr(traffic_prompts, prompt_kind)
    records: dict[str, list[StreamRecord]] = {target.name: [] for target in targets}
    for index in range(-1, rounds):
        for target in targets:
            async with target.client(1) as client:
                record = await stream_chat(client, target, prompt(rounds + 1 if index < 0 else index), 2)
            if record.error or record.ttft_s is None:
                raise RuntimeError(f"{target.name}: {record.error or 'no content streamed'}")
            if index >= 0:
                records[target.name].append(record)
                logger.info(
                    "%s, prompt %d: TTFT %.0f ms, %s of %s prompt tokens prefilled",
                    target.name, index, 1000 * record.ttft_s, record.prefilled_tokens, record.prompt_tokens,
                )  # fmt: skip
    return records


def ms_per_prefilled_token(record: StreamRecord) -> float:
    return 1000 * (record.ttft_s or 0.0) / max(record.prefilled_tokens or 1, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--prompt", choices=PROMPTS, default="code_edit", help="which traffic prompt (bench.traffic)")
    parser.add_argument("--rounds", type=int, default=8, help="prompts, each sent to every server in turn")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache/ortserve")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    bin_dir = llama_cpp_bin(args.cache_dir)
    ggufs = gguf_files(args.cache_dir, bin_dir, args.model, models_dir(args.cache_dir))
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        run = Path(tmp)
        settings = {"CHAT_MODEL_ID": args.model, "CHAT_MAX_MODEL_LEN": "4096"}
        chat = stack.enter_context(SoloChat(run / "chat", models_dir(args.cache_dir) / args.model, settings))
        targets = [ChatTarget("ours", f"{chat.url}/v1", args.model)]
        for quant, gguf in ggufs.items():
            server = stack.enter_context(LlamaServer(bin_dir / "llama-server", gguf, run / f"{quant}.log"))
            targets.append(ChatTarget(f"llama-server {quant}", server.base_url, args.model, keep_alive=False))
        records = asyncio.run(first_tokens(targets, args.prompt, args.rounds))
    ours_ttft = statistics.median(r.ttft_s or 0.0 for r in records["ours"])
    ours_token = statistics.median(map(ms_per_prefilled_token, records["ours"]))
    for name, rows in records.items():
        ttft = statistics.median(r.ttft_s or 0.0 for r in rows)
        token_ms = statistics.median(map(ms_per_prefilled_token, rows))
        logger.info(
            "%s: TTFT median %.0f ms, ours / this %.2f×; %.1f ms per prefilled prompt token, ours / this %.2f×",
            name, 1000 * ttft, ours_ttft / ttft, token_ms, ours_token / token_ms,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
