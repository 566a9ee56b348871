#!/usr/bin/env python3
"""Bring your own GGUF: turn one GGUF file into a model folder the chat service serves.

    make convert GGUF=path/to/model.gguf ID=my-model          (OUT=dir to choose where; default the models folder)
    python tools/model_build/convert.py --gguf FILE --id NAME --out DIR [--hidden-states] [--force]

Run it in the build venv. The route is the one the bundled chat models take: the GGUF is checked (readable, whole,
an architecture both transformers' GGUF loader and the ONNX Runtime GenAI builder handle), dequantized into an fp32
transformers folder with the GGUF's own tokenizer and chat template, then built to int4 (k_quant, accuracy level 4,
a tied embedding shared with the int4 lm_head). Everything is written under a temporary folder and renamed into
OUT/<NAME>/ at the end, stamped with .complete: a failure leaves nothing half-written. Any failure is one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import common  # a script: its folder is on sys.path
from common import BuildError, log

# general.architecture values that both transformers' GGUF loader and the genai builder know. llama (SmolLM2) and
# qwen2 (Qwen2.5) are the ones proven here; the others are in both tools' lists but were not tried.
SUPPORTED_ARCHITECTURES = ("llama", "mistral", "phi3", "qwen2", "qwen3", "gemma2", "gemma3")
INT4_OPTIONS = ["algo_config=k_quant", "accuracy_level=4"]
MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class Ctx:
    """The subset of build.py's Context that llm._genai_build uses."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.timings: dict[str, float] = {}


def inspect_gguf(path: Path) -> dict:
    """Open the file with the gguf reader and return its architecture, name and size facts, or raise BuildError."""
    from gguf import GGUFReader

    if not path.is_file():
        raise BuildError(f"{path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise BuildError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        reader = GGUFReader(path)
    except Exception as exc:  # a cut file fails to map its last tensors (numpy's "cannot reshape"), or worse
        raise BuildError(
            f"{path} is truncated or corrupt: the gguf reader failed ({type(exc).__name__}: {exc})"
        ) from None
    end = max((t.data_offset + int(t.n_bytes) for t in reader.tensors), default=0)
    if not reader.tensors or end > size:
        raise BuildError(f"{path} is truncated: its tensors need {end} bytes, the file has {size}")
    architecture = _string_field(reader, "general.architecture")
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise BuildError(
            f"{path}: architecture {architecture!r} is not supported (supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    return {
        "architecture": architecture,
        "name": _string_field(reader, "general.name"),
        "tensors": len(reader.tensors),
        "bytes": size,
    }


def _string_field(reader, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None or not field.data:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")


def hf_to_onnx(hf: Path, out: Path, name: str, scratch: Path, hidden_states: bool) -> None:
    """The genai builder, int4, with the tied embedding shared when the model ties it."""
    import llm

    options = list(INT4_OPTIONS)
    if json.loads((hf / "config.json").read_text()).get("tie_word_embeddings"):
        options.append("shared_embeddings=true")
    if hidden_states:
        options.append("include_hidden_states=true")
    llm._genai_build(Ctx(scratch), out, name, hf, "int4", options)


def convert(gguf: Path, model_id: str, out_dir: Path, hidden_states: bool = False, force: bool = False) -> Path:
    if not MODEL_ID.match(model_id):
        raise BuildError(f"--id {model_id!r}: use 1-64 lowercase letters, digits, '.', '_' or '-'")
    final = out_dir / model_id
    if final.exists() and not force:
        raise BuildError(f"{final} exists already (--force, or FORCE=1 with make, replaces it)")
    facts = inspect_gguf(gguf)
    log.info("[%s] %s: %s, %d tensors, %.0f MB", model_id, gguf.name, facts["architecture"], facts["tensors"],
             facts["bytes"] / 1e6)  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".convert-{model_id}-", dir=out_dir) as scratch_name:
        scratch = Path(scratch_name)
        hf, onnx = scratch / "hf", scratch / "onnx"
        with common.step({}, model_id, "GGUF -> fp32 transformers folder"):
            import llm  # torch and transformers: only once the file has passed its checks

            llm.gguf_to_fp32_hf(gguf.resolve(), hf)
        onnx.mkdir()
        hf_to_onnx(hf, onnx, model_id, scratch, hidden_states)
        common.make_readable(onnx)
        if final.exists():
            shutil.rmtree(final)
        os.rename(onnx, final)
    stamp = {
        "name": model_id,
        "converted_from": str(gguf),
        **facts,
        "build_seconds": round(time.monotonic() - start, 1),
    }
    (final / ".complete").write_text(json.dumps(stamp, indent=2) + "\n")
    log.info("[%s] done in %.0fs: %s (%.0f MB)", model_id, stamp["build_seconds"], final, common.dir_size(final) / 1e6)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert a GGUF chat model into an ortserve model folder.")
    parser.add_argument("--gguf", type=Path, required=True, help="the GGUF file")
    parser.add_argument("--id", required=True, help="the model id to serve it as (also the folder's name)")
    parser.add_argument("--out", type=Path, required=True, help="models folder; the model lands in OUT/<id>/")
    parser.add_argument("--hidden-states", action="store_true", help="also output hidden states (/v1/embeddings)")
    parser.add_argument("--force", action="store_true", help="replace OUT/<id> when it exists")
    args = parser.parse_args(argv)
    common.setup_logging()
    common.force_offline()
    try:
        final = convert(
            args.gguf.expanduser(), args.id, args.out.expanduser().resolve(), args.hidden_states, args.force
        )
    except BuildError as exc:
        sys.stderr.write(f"convert: {str(exc).strip()}\n")
        return 2
    sys.stdout.write(
        f"\n{args.id} is ready in {final}\n"
        f"  serve it alone:        CHAT_MODEL_PATH={final} make run-chat\n"
        f"  or load it into the running stack (make run / make up):\n"
        f"    curl --cacert run/tls/ca.pem https://localhost:8443/admin/models/load \\\n"
        f'      -H "Authorization: Bearer $(cat run/admin-key)" -H "Content-Type: application/json" \\\n'
        f'      -d \'{{"id": "{args.id}", "path": "{final}"}}\'\n'
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
