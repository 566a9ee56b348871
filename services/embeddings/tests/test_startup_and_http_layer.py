"""Start-up checks of the real process, and the HTTP layer on a fake model (lifespan, 500s, readiness)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from embeddings_service.engine.types import EncodedInput
from embeddings_service.main import create_app
from embeddings_service.model_table import EmbeddingModelTable
from embeddings_service.settings import EmbedSettings
from embeddings_testing import FakeLoader
from fastapi.testclient import TestClient


def _run_service(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "embeddings_service"],
        env={**os.environ, "EMBED_PORT": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.model  # starts a service process of its own
def test_missing_model_folder_stops_with_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = _run_service({"EMBED_MODELS": f"m={missing}"})
    assert result.returncode == 2
    errors = [json.loads(line) for line in result.stderr.splitlines() if '"ERROR"' in line]
    assert len(errors) == 1 and str(missing) in errors[0]["message"] and "model.onnx" in errors[0]["message"]


@pytest.mark.model  # starts a service process of its own
def test_folder_without_kind_or_bad_settings_stop_the_start(tmp_path: Path) -> None:
    result = _run_service({"EMBED_MODELS": f"m={tmp_path}"})
    assert result.returncode == 2 and "set its kind" in result.stderr
    result = _run_service({"EMBED_MODELS": "[{not json"})
    assert result.returncode == 2 and "EMBED_" in result.stderr


class FakeModel:
    """Vector = [length, first id, 0 ...]; `explode` makes the next batch fail like a broken model would."""

    def __init__(self) -> None:
        self.closed = False
        self.explode = False

    def run_batch(self, batch: list[EncodedInput]) -> np.ndarray:
        if self.explode:
            raise RuntimeError("secret internal detail")
        return np.array([[len(item), item.ids[0], 0.0, 0.0] for item in batch], dtype=np.float32)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake() -> FakeModel:
    return FakeModel()


@pytest.fixture
def http(fake: FakeModel):
    settings = EmbedSettings(models="fake=/unused")

    def model_table_factory(settings: EmbedSettings) -> EmbeddingModelTable:
        return EmbeddingModelTable.load(settings, FakeLoader(fake))  # type: ignore[arg-type]

    with TestClient(create_app(settings, model_table_factory=model_table_factory)) as client:
        yield client
    assert fake.closed  # the lifespan frees the models


def test_fake_model_round_trip_and_readiness(http: TestClient, fake: FakeModel) -> None:
    assert http.get("/ready").status_code == 200
    body = http.post("/v1/embeddings", json={"model": "fake", "input": ["abc", "z"]}).json()
    # Not normalised by the fake; the response is what the model gave, in input order.
    assert [d["embedding"][:2] for d in body["data"]] == [[3.0, 97.0], [1.0, 122.0]]
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert http.post("/v1/embeddings", json={"model": "fake", "input": "x" * 17}).status_code == 400
    assert http.post("/v1/embeddings", json={"model": "fake", "input": "x" * 17, "truncate": True}).status_code == 200


def test_model_failure_is_json_500_without_details(http: TestClient, fake: FakeModel) -> None:
    fake.explode = True
    response = http.post("/v1/embeddings", json={"model": "fake", "input": "abc"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error" and "secret" not in error["message"]
    assert response.headers["x-request-id"] in error["message"]
    fake.explode = False
    assert http.post("/v1/embeddings", json={"model": "fake", "input": "abc"}).status_code == 200
