"""`make quality-variants`: int4 builds of one model side by side, chosen by quality, speed and memory together.

    python -m bench.quality.variants [--model ID] [--variants served block128 asym …] [--repeats 3]

The served folder is one variant; every other is built here from the same fp32 weights (the GGUF dequantized once,
as the model build does it) by onnxruntime-genai's builder with the served options plus the variant's own. Each is
then scored on the quality gate's corpus and windows (bench/quality), and probed for speed and RSS in a process of
its own (bench/quality/probe.py), the variants interleaved repeat by repeat so that a busy machine moves them all
alike. The decode and prefill ratios are paired within a repeat against the served folder; the median is reported.
Writes docs/benchmarks/<model>-build-variants.md; raw results and the built folders go to results/quality/variants/.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import environment
from bench.cpu_monitor import load_average
from bench.quality import weight_types
from bench.quality.corpus import corpus
from bench.quality.int4 import Int4Model
from bench.quality.perplexity import score
from bench.quality.run import BUILD_PYTHON, MODELS_DIR, ROOT, fp32_reference
from bench.quality.variants_report import write

logger = logging.getLogger("bench.quality.variants")

# The served build's options (tools/model_build/qwen.py QWEN_INT4_OPTIONS; SmolLM2's are the first two), and what
# each variant changes. A later key=value overrides an earlier one in the builder's option parsing.
SERVED_OPTIONS = {
    "smollm2-135m-instruct": ["algo_config=k_quant", "accuracy_level=4"],
    "qwen2.5-coder-0.5b-instruct": ["algo_config=k_quant", "accuracy_level=4", "shared_embeddings=true"],
    "qwen2.5-coder-1.5b-instruct": [
        "algo_config=k_quant",
        "accuracy_level=4",
        "shared_embeddings=true",
        "block_size=64",
    ],
}
VARIANTS = {
    "served": [],
    "block32": ["block_size=32"],
    "block64": ["block_size=64"],
    "block128": ["block_size=128"],
    "asym": ["is_symmetric=false"],
    "asym-rtn": ["is_symmetric=false", "algo_config=rtn"],
    "lm-head-int8": ["matmul_mixed_precision=last_matmul:int8"],
    "mixed-int8": ["algo_config=k_quant_mixed"],
    "acc-fp32": ["accuracy_level=1"],
}


class BuildFailed(Exception):
    """The builder refused a variant: reported as such, the other variants go on."""


FP32_HF_SCRIPT = """
import sys
sys.path.insert(0, "tools/model_build")
from pathlib import Path
import llm
llm.gguf_to_fp32_hf(Path(sys.argv[1]), Path(sys.argv[2]), tie_from_lm_head=True)
"""


def build(model: str, variant: str, hf: Path, out: Path) -> float:
    """The variant's folder (built now unless already complete); returns the build's seconds (0 when reused)."""
    if (out / ".complete").exists():
        return 0.0
    if (MODELS_DIR / "_hf" / model / "config.json").exists():  # SmolLM2's fp32 folder, kept by the model build
        hf = MODELS_DIR / "_hf" / model
    elif not (hf / "config.json").exists():
        gguf = MODELS_DIR / "_gguf" / model / "model.gguf"
        logger.info("%s: the GGUF dequantized to an fp32 HF folder (once for every variant)", model)
        subprocess.run([str(BUILD_PYTHON), "-c", FP32_HF_SCRIPT, str(gguf), str(hf)], cwd=ROOT, check=True)
    shutil.rmtree(out, ignore_errors=True)
    options = SERVED_OPTIONS[model] + VARIANTS[variant]
    start = time.monotonic()
    command = [str(BUILD_PYTHON), "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o", str(out)]
    command += ["-p", "int4", "-e", "cpu", "-c", str(out.parent / f"cache-{variant}"), "--extra_options", *options]
    logger.info("%s %s: building with %s", model, variant, " ".join(options))
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    (out.parent / f"build-{variant}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        shutil.rmtree(out, ignore_errors=True)
        last = [line for line in done.stderr.splitlines() if line.strip()][-1:] or ["(no output)"]
        raise BuildFailed(f"the builder exited with {done.returncode}: {last[0]}")
    shutil.rmtree(out.parent / f"cache-{variant}", ignore_errors=True)
    seconds = time.monotonic() - start
    (out / ".complete").write_text(json.dumps({"options": options, "seconds": round(seconds)}))
    return seconds


def perplexity(folder: Path, threads: int, context: int, stride: int) -> dict:
    int4 = Int4Model(folder, threads)
    found = {}
    for text in corpus():
        total = score(int4.encode(text.body), context, stride, int4.logits)
        found[text.name] = {"nll": total.nll, "count": total.count}
    return found


def probe(folder: Path, threads: int) -> dict:
    command = [sys.executable, "-m", "bench.quality.probe", "--folder", str(folder), "--threads", str(threads)]
    done = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def folder_mib(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.iterdir() if f.name.startswith("model.onnx")) / 2**20, 1)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", choices=sorted(SERVED_OPTIONS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3, help="interleaved speed probes per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--stride", type=int, default=256)
    parser.add_argument("--fp32", type=Path, help="a results.json of make quality whose fp32 scores to reuse")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--reuse", type=Path, help="an earlier run's raw results: its builds, perplexities and fp32 kept, probes redone"
    )
    args = parser.parse_args()
    work = ROOT / "results/quality/variants" / args.model
    work.mkdir(parents=True, exist_ok=True)
    variants = ["served", *[v for v in args.variants if v != "served"]]
    folders = {v: MODELS_DIR / args.model if v == "served" else work / v for v in variants}
    results: dict = {
        "model": args.model,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(["python -m bench.quality.variants", *sys.argv[1:]]),
        "environment": environment.describe(None),
        "load_1m_at_start": load_average(),
        "options": {v: SERVED_OPTIONS[args.model] + VARIANTS[v] for v in variants},
        "variants": {v: {"probes": []} for v in variants},
    }
    earlier = json.loads(args.reuse.read_text()) if args.reuse else None
    if earlier is not None:
        variants = [v for v in variants if v in earlier["variants"]]
        results["options"] = earlier["options"]
        results["failed"] = earlier.get("failed", {})
        results["fp32"] = earlier["fp32"]
        results["reused"] = str(args.reuse)
        results["variants"] = {
            v: {"probes": [], **{k: x for k, x in earlier["variants"][v].items() if k in ("build_s", "perplexity")}}
            for v in variants
        }
    for variant in variants[1:] if earlier is None else []:
        try:
            results["variants"][variant]["build_s"] = round(build(args.model, variant, work / "_hf", folders[variant]))
        except BuildFailed as failed:
            logger.warning("%s %s: %s", args.model, variant, failed)
            results.setdefault("failed", {})[variant] = str(failed)
            del results["variants"][variant]
    shutil.rmtree(work / "_hf", ignore_errors=True)
    variants = list(results["variants"])
    for variant in variants:
        entry = results["variants"][variant]
        entry["size_mib"] = folder_mib(folders[variant])
        entry["types"] = weight_types.onnx_types(folders[variant])
        if "perplexity" in entry:
            continue
        start = time.monotonic()
        entry["perplexity"] = perplexity(folders[variant], args.threads, args.context, args.stride)
        logger.info("%s %s: scored in %.0f s", args.model, variant, time.monotonic() - start)
    if "fp32" in results:
        pass
    elif args.fp32:
        results["fp32"] = json.loads(args.fp32.read_text())["models"][args.model]["fp32"]
    else:
        ids = {t.name: Int4Model(folders["served"], args.threads).encode(t.body) for t in corpus()}
        job = {"context": args.context, "stride": args.stride, "texts": ids}
        results["fp32"] = fp32_reference(args.model, job, work, args.threads)
    for repeat in range(args.repeats):
        order = variants[repeat % len(variants) :] + variants[: repeat % len(variants)]
        for variant in order:
            results["variants"][variant]["probes"].append(probe(folders[variant], args.threads))
            logger.info("%s %s probe %d: %s", args.model, variant, repeat, results["variants"][variant]["probes"][-1])
    results["load_1m_at_end"] = load_average()
    for variant in variants:
        probes, served = results["variants"][variant]["probes"], results["variants"]["served"]["probes"]
        for key in ("decode_tok_s", "prefill_tok_s", "decode_rows_tok_s"):
            ratios = [p[key] / s[key] for p, s in zip(probes, served, strict=True) if p.get(key) and s.get(key)]
            if not ratios:
                continue
            results["variants"][variant][key.replace("_tok_s", "_ratio")] = statistics.median(ratios)
    raw = work / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    raw.write_text(json.dumps(results, indent=1))
    out = args.out or ROOT / f"docs/benchmarks/{args.model}-build-variants.md"
    write(results, out)
    logger.info("raw results %s, report %s", raw, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
