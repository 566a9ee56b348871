"""The whole local stack (tools/stack.py up) on free ports in a temp run folder, and clients for it."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
from ortserve_common.testing import free_port

ROOT = Path(__file__).resolve().parent.parent


class Stack:
    def __init__(self, run_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        """`extra_env` sets any CHAT_*, PROXY_*, ... variable for this stack only (and may turn traces off)."""
        self.run_dir = run_dir
        names = ("CHAT_PORT", "EMBED_PORT", "MODELS_PORT", "PROXY_HTTPS_PORT", "OTLP_RECEIVER_PORT")
        self.ports = {name: str(free_port()) for name in names}
        # Traced like `ORTSERVE_TRACES=1 make run`: every span lands in run_dir/traces.jsonl.
        self.env = {**os.environ, "ORTSERVE_RUN_DIR": str(run_dir), "ORTSERVE_TRACES": "1", **self.ports}
        self.env.update(extra_env or {})
        self.base_url = f"https://localhost:{self.ports['PROXY_HTTPS_PORT']}"

    def up(self) -> Stack:
        result = subprocess.run(
            [sys.executable, str(ROOT / "tools/stack.py"), "up"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        if result.returncode != 0:
            raise RuntimeError(f"stack did not come up:\n{result.stdout}\n{result.stderr}\n{self.logs()}")
        self.api_key = (self.run_dir / "api-key").read_text().strip()
        self.admin_key = (self.run_dir / "admin-key").read_text().strip()
        self.ca = str(self.run_dir / "tls/ca.pem")
        return self

    def down(self) -> None:
        subprocess.run([sys.executable, str(ROOT / "tools/stack.py"), "down"], env=self.env, timeout=400, check=False)

    def spans(self, trace_id: str) -> list[dict]:
        """The spans of one trace that the local OTLP receiver has written so far."""
        path = self.run_dir / "traces.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [span for span in map(json.loads, lines) if span["trace_id"] == trace_id]

    def logs(self) -> str:
        logs = self.run_dir / "logs"
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log")))

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(self.run_dir / "supervisord.conf"), *args],
            capture_output=True,
            text=True,
            timeout=90,
        )
        return result.stdout

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

    def wait_for(self, predicate, timeout_s: float, what: str) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if predicate():
                return time.monotonic() - start
            time.sleep(0.25)
        raise AssertionError(f"{what} did not happen within {timeout_s}s")
