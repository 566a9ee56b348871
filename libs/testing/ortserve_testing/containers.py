"""The chat service's image run alone under a CPU limit (`docker run --cpus N`), serving one model folder, on a free
port of 127.0.0.1: for the test that its engine threads follow the cgroup quota and for bench/threads_cgroup.py.

The image is the one `make images` (tools/docker/images.sh) built, ortserve-chat:${ORTSERVE_TAG:-latest}. No registry
and no proxy: the service runs standalone, as `docker run` alone starts it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Self

import httpx
from ortserve_common.models_dir import models_dir

from ortserve_testing.processes import free_port

IMAGE = f"ortserve-chat:{os.environ.get('ORTSERVE_TAG', 'latest')}"
MODELS_DIR = models_dir()


def docker(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


class ChatContainer:
    """`with ChatContainer(folder, cpus=1) as chat:` returns once /ready answers; the container (and its anonymous
    /data volume) is removed on the way out."""

    def __init__(self, model_dir: Path, cpus: float, env: dict[str, str] | None = None, image: str = IMAGE) -> None:
        self.model_dir = model_dir
        self.cpus = cpus
        self.env = env or {}
        self.image = image
        self.name = f"ortserve-cpus-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180) -> Self:
        env_args = [arg for key, value in self.env.items() for arg in ("-e", f"{key}={value}")]
        docker(
            "run", "-d", "--name", self.name, "--cpus", str(self.cpus), "-p", f"127.0.0.1:{self.port}:8000",
            "-v", f"{self.model_dir}:/models/chat:ro", *env_args, self.image,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if docker("inspect", "-f", "{{.State.Running}}", self.name).strip() != "true":
                raise RuntimeError(f"{self.name} exited before it was ready:\n{self.logs()}")
            try:
                if httpx.get(self.base_url + "/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready in {timeout_s:.0f}s:\n{self.logs()}")

    def stop(self) -> None:
        subprocess.run(["docker", "rm", "-f", "-v", self.name], capture_output=True, timeout=60, check=False)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def logs(self) -> str:
        result = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True, timeout=30, check=False)
        return result.stdout + result.stderr

    def log_records(self) -> list[dict[str, Any]]:
        """The service's JSON log lines (anything else, such as a Python warning, is left out)."""
        return [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]

    def metrics(self) -> str:
        return httpx.get(self.base_url + "/metrics", timeout=10).text

    def cpu_stat(self) -> dict[str, int]:
        """The container cgroup's CPU accounting (cpu.stat: nr_periods, nr_throttled, ...), cgroup v2 or v1."""
        read = "cat /sys/fs/cgroup/cpu.stat 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.stat"
        out = docker("exec", self.name, "sh", "-c", read, timeout=30)
        return {key: int(value) for key, value in (line.split() for line in out.splitlines() if len(line.split()) == 2)}

    def pids(self) -> set[int]:
        """The container's processes as this host numbers them (for the benchmark's CPU accounting)."""
        out = subprocess.run(
            ["docker", "top", self.name, "-o", "pid"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
        return {int(line) for line in out.split() if line.isdigit()}
