"""Time to first token and peak RSS of one long prompt's prefill in the batched engine's decoder, with the lm_head on
every position (the graph as built) against only the positions read (engine/batched/gathered_logits.py), at several
prefill chunk sizes. In-process (no HTTP), each run in a fresh child process, the variants interleaved round by round
so that load from other processes slows them alike; ratios are taken within a round.

    .venv/bin/python -m bench.prefill_logits --model ~/.cache/ortserve/models/r<recipe>/qwen2.5-coder-0.5b-instruct

A run prefills the prompt as the scheduler does (the first chunk by `prefill`, the rest by `extend`, chunk by chunk)
and takes the argmax of the last logits. Its TTFT is that time; its peak is the process's peak RSS over the prefill
alone (VmHWM, reset after the model is open and warm), and the growth is that peak less the RSS before it.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ortserve_common.cpu import host_cpu

logger = logging.getLogger("bench.prefill_logits")

TEXT = (
    "def merge_sorted(left, right):\n    result = []\n    i = j = 0\n    while i < len(left) and j < len(right):\n"
    "        if left[i] <= right[j]:\n            result.append(left[i]); i += 1\n        else:\n"
    "            result.append(right[j]); j += 1\n    return result + left[i:] + right[j:]\n\n"
    "The function above merges two sorted lists. Explain each step, then give its complexity. "
)
# (name, lm_head on read positions only, prefill chunk): today's engine first.
VARIANTS = [("full, 512-token chunks", False, 512), ("gathered, 512", True, 512), ("gathered, 2048", True, 2048)]


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def child(model: Path, tokens: int, gather: bool, chunk: int, threads: int) -> dict:
    from chat_service.engine.batched.decoder import OnnxDecoder
    from chat_service.engine.model_folder import ModelFolder

    folder = ModelFolder(model, max_model_len=tokens + 64)
    prompt = folder.tokenizer.encode(TEXT * (tokens // 40))[:tokens]
    decoder = OnnxDecoder(model, folder.config, threads, 1, tokens + 64, gather_logits=gather)
    decoder.cache.ensure(tokens + 64)  # the scheduler does this at admission, before the prefill
    decoder.prefill([prompt[:16]], 0)  # warm: first-call costs are not the prefill's
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM (peak RSS) to the current RSS
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    logits = decoder.prefill([prompt[:chunk]], 0)[0]
    done = min(chunk, len(prompt))
    while done < len(prompt):
        logits = decoder.extend(0, prompt[done : done + chunk], cached=done)
        done = min(len(prompt), done + chunk)
    first = int(logits.argmax())
    ttft = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    return {"ttft_s": ttft, "peak_rss_mb": peak / 1024, "growth_mb": (peak - before) / 1024, "first_token": first}


def run_child(model: Path, tokens: int, gather: bool, chunk: int, threads: int) -> dict:
    command = [sys.executable, "-m", "bench.prefill_logits", "--model", str(model), "--tokens", str(tokens)]
    command += ["--threads", str(threads), "--child", f"{int(gather)},{chunk}"]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(model: Path, tokens: int, rounds: int, threads: int) -> dict:
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in VARIANTS}
    for round_no in range(rounds):
        # Rotated so no variant always runs first (right after another's process exits).
        order = VARIANTS[round_no % len(VARIANTS) :] + VARIANTS[: round_no % len(VARIANTS)]
        for name, gather, chunk in order:
            result = run_child(model, tokens, gather, chunk, threads)
            logger.info("round %d %s: %s", round_no, name, result)
            runs[name].append(result)
    base = VARIANTS[0][0]
    summary = {}
    for name, results in runs.items():
        summary[name] = {
            "ttft_s_median": statistics.median(r["ttft_s"] for r in results),
            "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in results),
            "growth_mb_median": statistics.median(r["growth_mb"] for r in results),
            "ttft_ratio_to_full_per_round": [
                r["ttft_s"] / b["ttft_s"] for r, b in zip(results, runs[base], strict=True)
            ],
            "same_first_token": all(
                r["first_token"] == b["first_token"] for r, b in zip(results, runs[base], strict=True)
            ),
        }
    return {
        "model": model.name,
        "cpu": host_cpu().describe(),
        "prompt_tokens": tokens,
        "runs": runs,
        "summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model folder (genai_config.json)")
    parser.add_argument("--tokens", type=int, default=2000, help="prompt length in tokens")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every variant, interleaved")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    model = args.model.expanduser()
    if args.child:
        gather, chunk = args.child.split(",")
        sys.stdout.write(json.dumps(child(model, args.tokens, gather == "1", int(chunk), args.threads)) + "\n")
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(model, args.tokens, args.rounds, args.threads)
    text = json.dumps(result, indent=2)
    logger.info("%s", text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
