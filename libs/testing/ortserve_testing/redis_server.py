"""A throwaway Redis server (Debian's redis-server) for the per-key limits tests: on a free loopback port, nothing
saved to disk, stopped and started again at will so a test can take the counter store away."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from ortserve_testing.processes import free_port
from ortserve_testing.waiting import wait_until


class TemporaryRedis:
    """`url` is None, with `reason` saying why, when there is no redis-server on this machine."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="ortserve-redis-"))
        self.binary = shutil.which("redis-server")
        self.url: str | None = f"redis://127.0.0.1:{self.port}/0" if self.binary else None
        self.reason = "" if self.binary else "no redis-server on this machine (make redis installs Debian's)"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        if self.binary is None or self._process is not None:
            return self
        self._process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=(self.workdir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self.answers, "redis-server to accept connections", 20)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
