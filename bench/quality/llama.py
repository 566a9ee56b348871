"""llama.cpp's side of the gate: `llama-perplexity --ppl-stride` on the GGUF the model was built from, on llama.cpp's
own 4-bit requantization of it (Q4_0, its fastest on x86 and the variant the benchmarks serve) and on its fp32
dequantization (F32, made with `llama-quantize --allow-requantize … F32`): llama.cpp's own reference, in its own
tokenization. The F32 file is the same function as the source GGUF, so the source's ratio is ~1 by construction; the
Q4_0 ratio is llama.cpp's cost of requantizing the same weights to 4 bits, the figure our int4 build is held to.
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
import time
from pathlib import Path

from bench.quality.perplexity import windows

logger = logging.getLogger("bench.quality.llama")
CHUNK = re.compile(r"\[(\d+)\]([0-9.]+|nan|inf),")
TOKENS = re.compile(r"have (\d+) tokens")


def f32_gguf(bin_dir: Path, source: Path, out_dir: Path, name: str) -> Path:
    """The source GGUF dequantized to F32 (made once, kept beside the Q4_0 file)."""
    f32 = out_dir / f"{name}.F32-dequantized.gguf"
    if not f32.exists():
        tmp = f32.with_suffix(".tmp")
        command = [str(bin_dir / "llama-quantize"), "--allow-requantize", str(source), str(tmp), "F32"]
        subprocess.run(command, check=True, capture_output=True)
        tmp.rename(f32)
    return f32


def parse(output: str, context: int, stride: int) -> dict:
    """llama-perplexity's strided mode prints the running perplexity after every window, `[i]ppl,`: the last one is
    the whole text's. The number of scored tokens follows from its token count, as in perplexity.windows."""
    chunks = CHUNK.findall(output)
    found = TOKENS.search(output)
    if not chunks or found is None:
        raise RuntimeError(f"no perplexity in llama-perplexity's output:\n{output[-2000:]}")
    n_tokens = int(found.group(1))
    count = len(windows(n_tokens, context, stride)) * stride
    if int(chunks[-1][0]) * stride != count:
        raise RuntimeError(f"llama-perplexity scored {chunks[-1][0]} windows, expected {count // stride}")
    perplexity = float(chunks[-1][1])
    return {"tokens": n_tokens, "nll": math.log(perplexity) * count, "count": count, "perplexity": perplexity}


def perplexity(bin_dir: Path, gguf: Path, text: Path, context: int, stride: int, threads: int) -> dict:
    # With --ppl-stride, llama-perplexity widens its context by stride / 2 ("adjusting context size from … to …"):
    # ask for that much less, so that its windows are `context` tokens like ours.
    command = [
        str(bin_dir / "llama-perplexity"),
        *("-m", str(gguf), "-f", str(text), "-c", str(context - stride // 2), "--ppl-stride", str(stride)),
        *("-b", str(context), "-ub", str(context), "-t", str(threads)),
    ]
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    output = result.stdout + result.stderr
    if f"adjusting context size from {context - stride // 2} to {context}" not in output:
        raise RuntimeError(f"llama-perplexity did not run windows of {context} tokens:\n{output[-2000:]}")
    parsed = parse(output, context, stride)
    logger.info("llama.cpp %s %s: perplexity %.4f", gguf.name, text.name, parsed["perplexity"])
    return parsed | {"seconds": round(time.monotonic() - start, 1)}


def version(bin_dir: Path) -> str:
    """llama-perplexity's own version line, and how the binaries were built when bench/ built them."""
    result = subprocess.run([str(bin_dir / "llama-perplexity"), "--version"], capture_output=True, text=True)
    line = next((x for x in (result.stdout + result.stderr).splitlines() if "version" in x), "unknown version")
    info = bin_dir / "BUILD_INFO"
    return f"{line.strip()} ({info.read_text().strip()})" if info.exists() else line.strip()
