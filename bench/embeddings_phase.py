"""The embeddings phase of `make bench`: all-MiniLM-L6-v2 through the proxy (TLS) at several client counts and batch
sizes, against sentence-transformers in-process on the same texts (bench/st_reference.py, in the model-build venv),
and its section of the report."""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench import clients
from bench.clients import ChatTarget
from bench.cpu_monitor import CpuMonitor, wait_for_quiet

if TYPE_CHECKING:
    from bench.local_stack import LocalStack
    from bench.plan import Plan

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = json.loads((ROOT / "loadtest/prompts.json").read_text())
EMBED_MODEL = "all-minilm-l6-v2"
logger = logging.getLogger("bench")


@dataclass(frozen=True)
class Reference:
    python: Path  # the model-build venv's, which has torch and sentence-transformers
    model_dir: Path  # the model's source folder (transformers format)


def target(local: LocalStack) -> ChatTarget:
    return ChatTarget("embeddings via proxy (TLS)", local.proxy_url + "/v1", EMBED_MODEL, local.api_key, local.ca)


def cosines(a: list[list[float]], b: list[list[float]]) -> list[float]:
    x, y = np.asarray(a), np.asarray(b)
    x, y = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)
    return [float(v) for v in (x * y).sum(axis=1)]


def sentence_transformers_rates(reference: Reference, texts: list[str], batches: tuple[int, ...]) -> dict:
    """sentence-transformers on the model's source folder, 2 torch threads, in the model-build venv."""
    result = subprocess.run(
        [str(reference.python), str(ROOT / "bench/st_reference.py"), str(reference.model_dir), "2"],
        input=json.dumps({"texts": texts, "batch_sizes": list(batches)}),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    return json.loads(result.stdout)


async def measure(plan: Plan, proxy: ChatTarget, monitor: CpuMonitor, reference: Reference) -> dict:
    base = PROMPTS["sentences"]
    texts = [f"{base[i % len(base)]} (note {i})" for i in range(plan.embed_texts)]
    served = await clients.embed_all(proxy, texts[:64])
    rows, rates = [], {}
    for repeat in range(plan.repeats):
        await wait_for_quiet(monitor, plan.quiet_wait_s)
        monitor.start()
        rates = sentence_transformers_rates(reference, texts, plan.embed_batches)
        cpu = monitor.stop().as_dict()
        for batch, rate in rates["sentences_per_s"].items():
            rows.append({"target": "sentence-transformers", "batch": int(batch), "clients": 1, "repeat": repeat})
            rows[-1] |= {"sentences_per_s": rate, "cpu": cpu, "errors": []}
        for clients_n in plan.embed_clients:
            for batch in plan.embed_batches:
                batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
                await wait_for_quiet(monitor, plan.quiet_wait_s)
                monitor.start()
                done, seconds, errors = await clients.closed_loop_embeddings(proxy, batches, clients_n)
                cpu = monitor.stop().as_dict()
                rows.append({"target": "proxy", "batch": batch, "clients": clients_n, "repeat": repeat})
                rows[-1] |= {"sentences_per_s": done / seconds, "cpu": cpu, "errors": errors}
                logger.info("embeddings: %d clients, batch %d: %.0f sentences/s", clients_n, batch, done / seconds)
    similarity = cosines(served, rates["vectors"][:64])
    return {"rows": rows, "min_cosine_vs_reference": min(similarity), "reference_versions": rates["versions"]}


def section(embeddings: dict) -> list[str]:
    rows = embeddings["rows"]
    repeats = sorted({r["repeat"] for r in rows})
    st = {(r["batch"], r["repeat"]): r["sentences_per_s"] for r in rows if r["target"] == "sentence-transformers"}
    lines = [
        "| clients | sentences per request | proxy, sentences/s | ratio to sentence-transformers in-process "
        "(same batch size) | others' CPU, cores (median / max) |",
        "|---|---|---|---|---|",
    ]
    for batch in sorted({r["batch"] for r in rows}):
        reference = statistics.median(st[(batch, r)] for r in repeats)
        cpu = [r["cpu"]["other_cores"] for r in rows if r["target"] == "sentence-transformers" and r["batch"] == batch]
        lines.append(
            f"| sentence-transformers in-process | {batch} | **{reference:.0f}** | 1.00 | "
            f"{statistics.median(cpu):.2f} / {max(cpu):.2f} |"
        )
        for count in sorted({r["clients"] for r in rows if r["target"] == "proxy"}):
            own = [r for r in rows if r["target"] == "proxy" and r["batch"] == batch and r["clients"] == count]
            rate = statistics.median(r["sentences_per_s"] for r in own)
            ratio = statistics.median(r["sentences_per_s"] / st[(batch, r["repeat"])] for r in own)
            cpu = [r["cpu"]["other_cores"] for r in own]
            lines.append(
                f"| {count} | {batch} | **{rate:.0f}** | {ratio:.2f} | {statistics.median(cpu):.2f} / {max(cpu):.2f} |"
            )
    versions = ", ".join(f"{k} {v}" for k, v in embeddings["reference_versions"].items())
    lines += [
        "",
        f"Reference: {versions}, 2 torch threads, in one process, on the same texts. Smallest cosine between the "
        f"proxy's vectors and the reference's: {embeddings['min_cosine_vs_reference']:.6f}.",
        "",
    ]
    return lines
