"""One more chat service, alone on a free port with settings of its own, beside the stack (ortserve_testing's
LocalStack, which bench and loadtest share with the tests)."""

from __future__ import annotations

import os
from pathlib import Path

from ortserve_testing.processes import ServiceProcess, descendants, free_port
from ortserve_testing.stack import LocalStack

__all__ = ["LocalStack", "SoloChat", "descendants"]


class SoloChat:
    """One more chat service, alone on a free port with settings of its own (the "before" engine), as `make run`
    starts one: `with SoloChat(run_dir, {"CHAT_ENGINE": "generator"}) as chat:`."""

    def __init__(self, run_dir: Path, model_path: Path, settings: dict[str, str]) -> None:
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

    @property
    def pid(self) -> int:
        if self.process.proc is None:
            raise RuntimeError("the chat service is not started (use SoloChat in a with block)")
        return self.process.proc.pid
