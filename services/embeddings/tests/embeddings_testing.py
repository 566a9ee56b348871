"""Test helpers: the embeddings service as a real uvicorn process, and independent references to compare it with."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
from embeddings_service.engine.loader import LoadedModel
from ortserve_common.models_dir import models_dir
from ortserve_testing.processes import ServiceProcess, free_port

MODELS_DIR = models_dir()
MINILM = MODELS_DIR / "all-minilm-l6-v2"
MINILM_HF = MODELS_DIR / "_hf" / "all-minilm-l6-v2"
RERANKER = MODELS_DIR / "rerank-tiny-random"
SMOLLM_HIDDEN = MODELS_DIR / "smollm2-135m-instruct-hidden"
SMOLLM_PLAIN = MODELS_DIR / "smollm2-135m-instruct"
BUILD_PYTHON = Path(os.environ.get("ORTSERVE_BUILD_PYTHON", Path.home() / ".cache/ortserve/build-venv/bin/python"))

MINILM_ID = "all-minilm-l6-v2"
RURI_PREFIXED_ID = "minilm-ruri-prefixes"  # MiniLM again, with the Ruri v3 prefix table, to test input_type
RERANK_ID = "rerank-tiny-random"
LLM_ID = "phi-3.5-mini"  # the spec's id, served here by the SmolLM2 hidden-states build
LLM_PLAIN_ID = "smollm2-135m-instruct"  # an LLM folder built without hidden states

TEST_MODELS = [
    {"id": MINILM_ID, "path": str(MINILM)},
    {"id": RURI_PREFIXED_ID, "path": str(MINILM), "prefixes": "ruri-v3"},
    {"id": RERANK_ID, "path": str(RERANKER)},
    {"id": LLM_ID, "path": str(SMOLLM_HIDDEN), "kind": "llm-embedding", "max_length": 512},
    {"id": LLM_PLAIN_ID, "path": str(SMOLLM_PLAIN), "kind": "llm-embedding"},
]


class EmbedServer(ServiceProcess):
    """`python -m embeddings_service` in a subprocess, exactly as it is started in production."""

    def __init__(self, models: list[dict] | None = None, **env: str) -> None:
        port = free_port()
        environment = {
            **os.environ,
            "EMBED_MODELS": json.dumps(models if models is not None else TEST_MODELS),
            "EMBED_PORT": str(port),
            "EMBED_HOST": "127.0.0.1",
            **env,
        }
        log_path = Path(os.environ.get("PYTEST_TMPDIR", "/tmp")) / f"embeddings-{port}.log"
        super().__init__("embeddings_service", port, environment, log_path)

    def start(self, timeout_s: float = 90) -> EmbedServer:
        return super().start(timeout_s)

    def access_lines(self) -> list[dict]:
        lines = []
        for line in self.logs().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("logger") == "ortserve.access":
                lines.append(record)
        return lines

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)

    def post(self, path: str, body: dict | bytes, timeout: float = 120) -> httpx.Response:
        if isinstance(body, bytes):
            headers = {"content-type": "application/json"}
            return httpx.post(self.base_url + path, content=body, headers=headers, timeout=timeout)
        return httpx.post(self.base_url + path, json=body, timeout=timeout)

    def embed(self, model: str, inputs: str | list, **extra) -> tuple[np.ndarray, dict]:
        """Float vectors (one row per input) and the raw response body, over plain HTTP."""
        response = self.post("/v1/embeddings", {"model": model, "input": inputs, **extra})
        assert response.status_code == 200, response.text
        body = response.json()
        return np.array([d["embedding"] for d in body["data"]], dtype=np.float32), body


class FakeTokenizer:
    """Characters are tokens, at most 16 of them per input."""

    vocab_size = 1000
    special_count = 0
    max_length = 16

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [[ord(c) % 1000 for c in text] for text in texts]

    def truncate(self, ids: list[int]) -> list[int]:
        return ids[: self.max_length]

    def count_plain(self, text: str) -> int:
        return len(text)


class FakeLoader:
    """Serves `model` (anything with `run_batch` and `close`) as a 4-dimension embedding model behind FakeTokenizer,
    for create_app's model_table_factory: the HTTP layer in-process, no model files."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def load(self, _path, _kind, _max_length) -> LoadedModel:
        return LoadedModel("embedding", self.model, FakeTokenizer(), 16, 4)  # type: ignore[arg-type]

    def close(self) -> None:
        self.model.close()


def decode_base64(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(axis=-1)


_ST_SCRIPT = """
import json, sys
from sentence_transformers import SentenceTransformer
texts = json.load(sys.stdin)
model = SentenceTransformer(sys.argv[1], device="cpu")
vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=8)
json.dump({"max_seq_length": model.max_seq_length, "vectors": vectors.tolist()}, sys.stdout)
"""


def sentence_transformers_reference(texts: list[str]) -> tuple[np.ndarray, int]:
    """Embeddings from sentence-transformers itself, run in the model-build venv (the service venv has no torch)."""
    result = subprocess.run(
        [str(BUILD_PYTHON), "-c", _ST_SCRIPT, str(MINILM_HF)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"sentence-transformers reference failed:\n{result.stderr[-3000:]}")
    data = json.loads(result.stdout)
    return np.array(data["vectors"], dtype=np.float32), int(data["max_seq_length"])
