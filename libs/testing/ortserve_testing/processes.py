"""A service as a real `python -m <package>` process on a free port, as production starts it; process trees."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Self

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """Started exactly as production starts it; `start()` returns once /ready answers 200, or raises with the log."""

    def __init__(self, module: str, port: int, env: dict[str, str], log_path: Path, poll_s: float = 0.2) -> None:
        self.module = module
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.env = env
        self.log_path = log_path
        self._poll_s = poll_s
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> Self:
        self._log = self.log_path.open("ab")
        # ORTSERVE_TEST_SERVICE_WRAPPER="qemu-x86_64 -cpu Haswell" runs the service as an AVX2-only CPU, as the tests
        # themselves then should be (docs/TESTING.md); emulation is slow, so the start may take far longer.
        wrapper = shlex.split(os.environ.get("ORTSERVE_TEST_SERVICE_WRAPPER", ""))
        if wrapper:
            timeout_s *= 20
        self.proc = subprocess.Popen(
            [*wrapper, sys.executable, "-m", self.module], env=self.env, stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.base_url + "/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(self._poll_s)
        raise RuntimeError(f"{self.module} not ready in {timeout_s}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, wait_s: float = 15) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self._log is not None:
            self._log.close()


def descendants(root_pid: int) -> set[int]:
    """root_pid and all processes below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found
