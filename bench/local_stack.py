"""The whole local stack (tools/stack.py) on free ports in its own run folder, started and stopped by the caller.

Used by `make bench` and `make loadtest` so that they never collide with a stack someone already runs on the default
ports or in ./run.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStack:
    """`with LocalStack(run_dir) as stack:` brings the stack up and always takes it down again."""

    def __init__(self, run_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.run_dir = run_dir.resolve()
        names = ("CHAT_PORT", "EMBED_PORT", "MODELS_PORT", "PROXY_HTTPS_PORT", "OTLP_RECEIVER_PORT")
        self.ports = {name: free_port() for name in names}
        self.env = {
            **os.environ,
            **(extra_env or {}),
            "ORTSERVE_RUN_DIR": str(self.run_dir),
            **{name: str(port) for name, port in self.ports.items()},
        }
        self.proxy_url = f"https://localhost:{self.ports['PROXY_HTTPS_PORT']}"
        self.chat_url = f"http://127.0.0.1:{self.ports['CHAT_PORT']}"

    def _stack(self, command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "tools/stack.py"), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def __enter__(self) -> LocalStack:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        logger.info("starting the stack in %s (proxy %s)", self.run_dir, self.proxy_url)
        result = self._stack("up", 300)
        if result.returncode != 0:
            self._stack("down", 120)
            raise RuntimeError(f"the stack did not come up (logs in {self.run_dir / 'logs'}):\n{result.stderr[-3000:]}")
        self.api_key = (self.run_dir / "api-key").read_text().strip()
        self.ca = str(self.run_dir / "tls/ca.pem")
        return self

    def __exit__(self, *exc: object) -> None:
        logger.info("stopping the stack in %s", self.run_dir)
        self._stack("down", 120)

    def pids(self) -> set[int]:
        """supervisord and every process it started (the services and nginx)."""
        pid_file = self.run_dir / "supervisord.pid"
        if not pid_file.exists():
            return set()
        return descendants(int(pid_file.read_text().strip()))


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


class SoloChat:
    """One more chat service, alone on a free port with settings of its own (the "before" engine), as `make run`
    starts one: `with SoloChat(run_dir, {"CHAT_ENGINE": "generator"}) as chat:`."""

    def __init__(self, run_dir: Path, model_path: Path, settings: dict[str, str]) -> None:
        from ortserve_common.testing import ServiceProcess

        port = free_port()
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "CHAT_MODEL_PATH": str(model_path),
            "CHAT_PORT": str(port),
            "CHAT_DATA_DIR": str(run_dir / "chat-data"),
            **settings,
        }
        self.url = f"http://127.0.0.1:{port}"
        self.process = ServiceProcess("chat_service", port, env, run_dir / "chat.log")

    def __enter__(self) -> SoloChat:
        self.process.start(timeout_s=120)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()

    def pids(self) -> set[int]:
        return descendants(self.process.proc.pid) if self.process.proc else set()
