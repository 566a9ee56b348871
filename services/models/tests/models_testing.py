"""Test helpers: the registry as a real `python -m models_service` process, and a stand-in chat instance."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ortserve_testing.processes import ServiceProcess, free_port

ADMIN_KEY = "sk-admin-" + "A" * 40
SEEDED_KEY = "sk-ortserve-seeded-" + "b" * 40
BUNDLED_MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yaml"


def _env_without_models_settings() -> dict[str, str]:
    # The developer's own MODELS_* variables must not leak into the server under test.
    return {key: value for key, value in os.environ.items() if not key.startswith("MODELS_")}


class ModelsServer(ServiceProcess):
    """`python -m models_service` in a subprocess on a free port, with its data folder under `workdir`."""

    def __init__(self, workdir: Path, port: int | None = None, **env: str) -> None:
        port = port or free_port()
        self.data_dir = workdir / "models-data"
        self.env = {
            **_env_without_models_settings(),
            "MODELS_PORT": str(port),
            "MODELS_HOST": "127.0.0.1",
            "MODELS_DATA_DIR": str(self.data_dir),
            "MODELS_MANIFEST": str(BUNDLED_MANIFEST),
            "MODELS_ADMIN_KEY": ADMIN_KEY,
            **env,
        }
        super().__init__("models_service", port, self.env, workdir / f"models-{port}.log", poll_s=0.05)

    def start(self, timeout_s: float = 20) -> ModelsServer:
        return super().start(timeout_s)

    def stop(self, wait_s: float = 10) -> None:
        super().stop(wait_s)

    def http(self, api_key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def openai_client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key="unused", max_retries=0, timeout=30)


def run_until_exit(workdir: Path, timeout_s: float = 20, **env: str) -> subprocess.CompletedProcess[str]:
    """Start the service expecting it to refuse to start; returns its exit status and output."""
    server = ModelsServer(workdir, **env)
    return subprocess.run(
        [sys.executable, "-m", "models_service"], env=server.env, capture_output=True, text=True, timeout=timeout_s
    )


def registration(url: str, models: list[dict[str, Any]], service: str = "chat", ttl_s: float = 30) -> dict[str, Any]:
    return {"service": service, "url": url, "models": models, "ttl_s": ttl_s}


class FakeInstance:
    """A stand-in service instance that answers /admin/models/load and /unload and records what it was sent.

    `status_code` set to an error makes it refuse; it answers like the real services, with `{"models": [...]}`.
    """

    def __init__(self, models: list[dict[str, Any]] | None = None, status_code: int = 200) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.models: list[dict[str, Any]] = list(models or [])
        self.status_code = status_code
        self.calls: list[tuple[str, dict[str, Any], str | None]] = []
        self._server = uvicorn.Server(
            uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/admin/models/load")
        async def load(request: Request) -> JSONResponse:
            body = await request.json()
            self.calls.append(("load", body, request.headers.get("authorization")))
            if self.status_code != 200:
                return JSONResponse({"error": {"message": "cannot load that"}}, self.status_code)
            self.models = [m for m in self.models if m["id"] != body["id"]]
            self.models.append({"id": body["id"], "kind": body["kind"] or "chat", "context_length": 4096})
            return JSONResponse({"models": self.models})

        @app.post("/admin/models/unload")
        async def unload(request: Request) -> JSONResponse:
            body = await request.json()
            self.calls.append(("unload", body, request.headers.get("authorization")))
            if self.status_code != 200:
                return JSONResponse({"error": {"message": "cannot unload that"}}, self.status_code)
            self.models = [m for m in self.models if m["id"] != body["id"]]
            return JSONResponse({"models": self.models})

        return app

    def start(self) -> FakeInstance:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake instance did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)
