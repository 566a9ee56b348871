"""The `system_fingerprint` of a loaded model: it changes when the numbers behind a reply can change.

OpenAI returns one so that a client knows when the same seeded request may stop giving the same answer. Here the
numerics follow the CPU's kernel-selecting ISA flags (MLAS picks its int4 and attention kernels by them), the
onnxruntime and onnxruntime-genai versions, the engine, whether the batched engine runs batch-invariant, its KV
cache's type where it is float16, and the model build itself (its genai_config.json and the size of its weights). The
thread count is left out: it splits work between threads without changing any sum (bench/kernel_numerics.py
--threads 1 and 2 give the same logits). The sampler's version is in too: the same seed draws other tokens when the
sampling code draws differently.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from ortserve_common.cpu import host_cpu

# Bump when the sampler maps (logits, seed) to other tokens: 2 is the candidates-first sampler (engine/candidates.py).
SAMPLER_VERSION = 2


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def model_build_id(model_path: Path) -> str:
    """The build's config and the size of every .onnx/.data file in it: a rebuild with another recipe changes it."""
    digest = hashlib.sha256()
    config = model_path / "genai_config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for weights in sorted([*model_path.glob("*.onnx"), *model_path.glob("*.onnx.data")]):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()


def system_fingerprint(model_path: Path, engine: str, batch_invariant: bool, kv_dtype: str = "float32") -> str:
    parts = {
        "isa": list(host_cpu().isa),
        "onnxruntime": _version("onnxruntime"),
        "onnxruntime-genai": _version("onnxruntime-genai"),
        "engine": engine,
        "sampler": SAMPLER_VERSION,
        "batch_invariant": batch_invariant,
        # Added with the float16 cache; left out for float32 so that existing fingerprints do not change.
        **({"kv_cache": kv_dtype} if kv_dtype != "float32" else {}),
        "model": model_build_id(model_path),
    }
    return "fp_" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]
