"""`make quality`: perplexity of the served int4 models against the fp32 weights they were built from and against
llama.cpp on the same GGUF, over a fixed offline corpus; writes docs/QUALITY.md.

    python -m bench.quality.run [--models ID …] [--no-llama] [--out docs/QUALITY.md]

Per model: the corpus is tokenized once by the served tokenizer; the int4 folder (ONNX Runtime GenAI) and the fp32
reference (torch, in the model-build venv) score the very same ids; llama-perplexity scores the same texts in its own
tokenization on the source GGUF, its Q4_0 requantization and its F32 dequantization. Every side uses the same
windows (context, stride). Raw results go to results/quality/<time>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from ortserve_common.cpu import engine_threads
from ortserve_common.models_dir import models_dir

from bench import environment
from bench.cpu_monitor import load_average
from bench.peers import gguf_files, llama_cpp_bin
from bench.quality import llama, report, weight_types
from bench.quality.corpus import corpus
from bench.quality.int4 import Int4Model
from bench.quality.perplexity import score

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("ORTSERVE_CACHE_DIR", Path.home() / ".cache/ortserve"))
MODELS_DIR = models_dir(CACHE_DIR)
BUILD_PYTHON = Path(os.environ.get("ORTSERVE_BUILD_PYTHON", CACHE_DIR / "build-venv/bin/python"))
MODELS = ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]
logger = logging.getLogger("bench.quality")


def fp32_reference(model: str, tokens: dict, work: Path, threads: int) -> dict:
    """The fp32 scores from torch in the build venv: SmolLM2's kept HF folder, else the GGUF the build dequantized."""
    hf, gguf = MODELS_DIR / "_hf" / model, MODELS_DIR / "_gguf" / model / "model.gguf"
    source = ["--hf", str(hf)] if (hf / "config.json").exists() else ["--gguf", str(gguf)]
    (work / f"{model}.tokens.json").write_text(json.dumps(tokens))
    out = work / f"{model}.fp32.json"
    command = [str(BUILD_PYTHON), "-m", "bench.quality.fp32_torch", "--tokens", str(work / f"{model}.tokens.json")]
    command += ["--out", str(out), "--threads", str(threads), *source]
    subprocess.run(command, cwd=ROOT, check=True)
    return json.loads(out.read_text()) | {"source": " ".join(source)}


def measure(model: str, args: argparse.Namespace, work: Path, bin_dir: Path | None, earlier: dict | None) -> dict:
    """One model's figures; earlier (the same model, corpus and windows from a previous run) supplies the int4 and
    fp32 scores, the slow part, so that a run can add llama.cpp's without redoing them (and keeps its llama.cpp
    figures where this run runs no llama.cpp for the model)."""
    if earlier is not None:
        logger.info("%s: int4 and fp32 scores reused from an earlier run", model)
        if bin_dir is None and earlier.get("llama"):
            return with_types(model, earlier)
        return with_types(model, earlier | {"llama": measure_llama(model, args, work, bin_dir)})
    return with_types(model, score_model(model, args, work) | {"llama": measure_llama(model, args, work, bin_dir)})


def with_types(model: str, figures: dict) -> dict:
    """The figures with what each side stores its weights in (bench/quality/weight_types.py)."""
    figures = figures | {"int4_types": weight_types.onnx_types(MODELS_DIR / model)}
    for entries in figures.get("llama", {}).values():
        if "types" not in entries and Path(entries["gguf"]).exists():
            entries["types"] = weight_types.gguf_types(Path(entries["gguf"]), BUILD_PYTHON)
    return figures


def score_model(model: str, args: argparse.Namespace, work: Path) -> dict:
    """The int4 build's and the fp32 reference's scores on the same ids."""
    texts = corpus()
    int4 = Int4Model(MODELS_DIR / model, args.threads)
    ids = {text.name: int4.encode(text.body) for text in texts}
    result: dict = {"tokens": {name: len(t) for name, t in ids.items()}, "int4": {}, "llama": {}}
    for name, tokens in ids.items():
        start = time.monotonic()
        total = score(tokens, args.context, args.stride, int4.logits)
        result["int4"][name] = {"nll": total.nll, "count": total.count, "seconds": round(time.monotonic() - start, 1)}
        logger.info("%s int4 %s: perplexity %.4f over %d tokens", model, name, total.perplexity, total.count)
    del int4
    job = {"context": args.context, "stride": args.stride, "texts": ids}
    start = time.monotonic()
    result["fp32"] = fp32_reference(model, job, work, args.threads) | {"seconds": round(time.monotonic() - start, 1)}
    return result


def measure_llama(model: str, args: argparse.Namespace, work: Path, bin_dir: Path | None) -> dict:
    """{variant: {"gguf", text: figures}} from llama-perplexity: the source GGUF, Q4_0 and F32; {} without llama.cpp."""
    if bin_dir is None:
        return {}
    files = gguf_files(CACHE_DIR, bin_dir, model, MODELS_DIR)
    source_quant = next(q for q in files if q != "Q4_0")
    files["F32"] = llama.f32_gguf(bin_dir, files[source_quant], files["Q4_0"].parent, model)
    found: dict = {}
    for variant, gguf in files.items():
        found[variant] = {"gguf": str(gguf), "source": variant == source_quant}
        for text in corpus():
            path = work / f"{text.name}.txt"
            path.write_text(text.body, encoding="utf-8")
            found[variant][text.name] = llama.perplexity(bin_dir, gguf, path, args.context, args.stride, args.threads)
    return found


def reusable(args: argparse.Namespace, texts: list[dict]) -> dict:
    """The models of --reuse's results (the later file wins) whose corpus (by sha256) and windows match this run's:
    {model: figures}."""
    found: dict[str, dict] = {}
    for path in args.reuse or []:
        earlier = json.loads(path.read_text())
        same = earlier["texts"] == texts and (earlier["context"], earlier["stride"]) == (args.context, args.stride)
        if not same:
            raise SystemExit(f"{path}: another corpus or other windows, nothing to reuse")
        found |= {model: figures for model, figures in earlier["models"].items() if "int4" in figures}
    return found


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", help="model ids (default: SmolLM2, Qwen2.5-Coder 0.5B, 1.5B if built)")
    parser.add_argument("--context", type=int, default=512, help="tokens per window (llama-perplexity -c)")
    parser.add_argument("--stride", type=int, default=256, help="tokens scored per window (--ppl-stride)")
    parser.add_argument("--threads", type=int, default=engine_threads(None), help="threads for every engine")
    parser.add_argument("--llama", action=argparse.BooleanOptionalAction, default=True, help="llama-perplexity too")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/QUALITY.md")
    parser.add_argument("--llama-bin", type=Path, help="llama.cpp's binaries (default: built and cached by bench/)")
    parser.add_argument("--llama-models", nargs="+", help="run llama-perplexity for these models only")
    parser.add_argument("--note", help="a paragraph for the report: what this run left out, and why")
    parser.add_argument(
        "--reuse",
        type=Path,
        nargs="+",
        help="results.json files whose int4 and fp32 scores to keep (same corpus); with --no-llama, llama.cpp's too",
    )
    args = parser.parse_args()
    models = args.models or [m for m in MODELS if (MODELS_DIR / m / "genai_config.json").exists()]
    started = time.monotonic()
    work = ROOT / "results/quality" / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    bin_dir = (args.llama_bin or llama_cpp_bin(CACHE_DIR)) if args.llama else None
    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(["python -m bench.quality.run", *sys.argv[1:]]),
        "context": args.context,
        "stride": args.stride,
        "threads": args.threads,
        "environment": environment.describe(None) | {"llama.cpp": llama.version(bin_dir) if bin_dir else None},
        "texts": [{"name": t.name, "source": t.source, "sha256": t.sha256, "chars": len(t.body)} for t in corpus()],
        "load_1m_at_start": load_average(),
        "reused": " ".join(map(str, args.reuse)) if args.reuse else None,
        "note": args.note,
        "models": {},
    }
    earlier = reusable(args, results["texts"])
    if bin_dir is None and args.reuse:  # the llama.cpp figures kept are the earlier run's: say which llama.cpp
        version = json.loads(args.reuse[-1].read_text())["environment"].get("llama.cpp")
        results["environment"]["llama.cpp"] = f"{version}, its figures reused" if version else None
    for model in models:
        begun = time.monotonic()
        llama_here = bin_dir if args.llama_models is None or model in args.llama_models else None
        figures = measure(model, args, work, llama_here, earlier.get(model))
        results["models"][model] = figures | {"seconds": figures.get("seconds", 0) + round(time.monotonic() - begun)}
    results["load_1m_at_end"] = load_average()
    results["seconds"] = round(time.monotonic() - started)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    summary = report.write(results, args.out)
    sys.stdout.write(f"{summary}\nreport: {args.out}\nraw results: {work / 'results.json'}\n")
    return 0 if all(m["met"] for m in report.verdicts(results).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
