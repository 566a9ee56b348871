"""The whole local stack (tools/stack.py up) on free ports in a run folder of its own, and clients for it: the one
helper that tests, `make bench` and `make loadtest` start it with, so they never collide with a stack someone already
runs on the default ports or in ./run.

    stack = LocalStack(run_dir).up() ... stack.down()      # tests (a session fixture)
    with LocalStack(run_dir) as stack: ...                  # bench, loadtest: always taken down again
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import httpx
import openai

from ortserve_testing.processes import descendants, free_port

ROOT = Path(__file__).resolve().parents[3]
PORT_NAMES = ("CHAT_PORT", "EMBED_PORT", "MODELS_PORT", "PROXY_HTTPS_PORT", "OTLP_RECEIVER_PORT", "LIMITS_STORE_PORT")
logger = logging.getLogger(__name__)


class LocalStack:
    def __init__(self, run_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        """`extra_env` sets any CHAT_*, PROXY_*, ... variable for this stack only (ORTSERVE_TRACES=1 records every
        span in run_dir/traces.jsonl)."""
        self.run_dir = run_dir.resolve()
        self.ports = {name: str(free_port()) for name in PORT_NAMES}
        self.env = {**os.environ, "ORTSERVE_RUN_DIR": str(self.run_dir), **self.ports, **(extra_env or {})}
        self.base_url = f"https://localhost:{self.ports['PROXY_HTTPS_PORT']}"
        self.proxy_url = self.base_url
        self.chat_url = f"http://127.0.0.1:{self.ports['CHAT_PORT']}"

    # Lifecycle ------------------------------------------------------------------------------------------------------
    def _stack(self, command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "tools/stack.py"), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def up(self) -> Self:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        logger.info("starting the stack in %s (proxy %s)", self.run_dir, self.proxy_url)
        result = self._stack("up", 300)
        if result.returncode != 0:
            self._stack("down", 400)
            raise RuntimeError(f"stack did not come up:\n{result.stdout}\n{result.stderr[-3000:]}\n{self.logs()}")
        self.api_key = (self.run_dir / "api-key").read_text().strip()
        self.admin_key = (self.run_dir / "admin-key").read_text().strip()
        self.ca = str(self.run_dir / "tls/ca.pem")
        return self

    def down(self) -> None:
        """Returns once every process of the stack has exited (a drain may take the services' drain timeout)."""
        logger.info("stopping the stack in %s", self.run_dir)
        self._stack("down", 400)

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # Looking at it --------------------------------------------------------------------------------------------------
    def pids(self) -> set[int]:
        """supervisord and every process it started (the services and nginx)."""
        pid_file = self.run_dir / "supervisord.pid"
        return descendants(int(pid_file.read_text().strip())) if pid_file.exists() else set()

    def spans(self, trace_id: str) -> list[dict]:
        """The spans of one trace that the local OTLP receiver has written so far."""
        path = self.run_dir / "traces.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [span for span in map(json.loads, lines) if span["trace_id"] == trace_id]

    def logs(self) -> str:
        logs = self.run_dir / "logs"
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log")))

    def ctl(self, *args: str) -> str:
        """supervisorctl on this stack (stop, start, status, pid …)."""
        result = subprocess.run(
            [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(self.run_dir / "supervisord.conf"), *args],
            capture_output=True,
            text=True,
            timeout=90,
        )
        return result.stdout

    # Clients --------------------------------------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)

    def http(self, http2: bool = False) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.ssl_context(), http2=http2, timeout=120)

    def openai(self, api_key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.base_url + "/v1",
            api_key=api_key or self.api_key,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(verify=self.ssl_context(), timeout=120),
        )

    def wait_for(self, predicate: Callable[[], object], timeout_s: float, what: str) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if predicate():
                return time.monotonic() - start
            time.sleep(0.25)
        raise AssertionError(f"{what} did not happen within {timeout_s}s")
