"""What a benchmark ran on: the machine and its CPU (model, the ISA flags that pick ONNX Runtime's kernels, the usable
cores), the software versions, the source tree, the date."""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

from ortserve_common.cpu import engine_threads, host_cpu

ROOT = Path(__file__).resolve().parent.parent


def cpu() -> dict:
    """The CPU as the services see it, with the one-line description the reports print."""
    info = host_cpu()
    return dataclasses.asdict(info) | {"isa": list(info.isa), "describe": info.describe()}


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip()


def _llama_cpp(bin_dir: Path) -> str:
    info = (bin_dir / "BUILD_INFO").read_text().strip() if (bin_dir / "BUILD_INFO").exists() else ""
    result = subprocess.run([str(bin_dir / "llama-server"), "--version"], capture_output=True, text=True, check=False)
    version = next((line for line in (result.stdout + result.stderr).splitlines() if "version" in line), "")
    return f"{version.strip()} ({info})" if info else version.strip()


def chat_settings() -> dict:
    """The chat service's effective settings, as it reads them from the same environment (CHAT_* reach the stack)."""
    wanted = (
        "engine",
        "max_batch_size",
        "max_prefills_per_step",
        "batch_wait_ms",
        "refill_wait_ms",
        "prefix_cache_mb",
        "max_concurrency",
        "max_queue",
        "engine_threads",
    )
    try:
        from chat_service.settings import ChatSettings  # only to describe the run

        settings = ChatSettings(model_path=Path("unused")).model_dump()
    except Exception as exc:  # a description, never a reason to fail the run
        return {"unknown": f"{type(exc).__name__}: {exc}"[:200]}
    if settings.get("engine_threads") is None:  # what the service resolves it to, and why
        settings["engine_threads"] = f"{engine_threads(None)} (the usable cores)"
    return {key: settings[key] for key in wanted if key in settings}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:  # uvicorn runs without uvloop and httptools: say so rather than fail
        return "not installed"


def describe(llama_bin: Path | None) -> dict:
    packages = ["onnxruntime-genai", "onnxruntime", "fastapi", "uvicorn", "uvloop", "httptools", "aiohttp", "locust"]
    dirty = [line[3:] for line in _git("status", "--porcelain", "services", "libs", "proxy").splitlines()]
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False).stderr.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{host_cpu().model_name}, {os.cpu_count()} cores, {_memory_gib():.0f} GiB",
        "cpu": cpu(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in packages} | {"nginx": nginx.split("/")[-1]},
        "llama.cpp": _llama_cpp(llama_bin) if llama_bin else None,
        "git": _git("rev-parse", "--short", "HEAD"),
        "uncommitted_service_files": dirty,
        "chat_settings": chat_settings(),
    }
