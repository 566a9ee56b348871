"""Embeddings and rerank spans (batch size, token count) and the Prometheus metrics, on a fake model."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import numpy as np
import pytest
from embeddings_service.engine.loader import LoadedModel
from embeddings_service.engine.types import EncodedInput
from embeddings_service.main import create_app
from embeddings_service.model_table import EmbeddingModelTable
from embeddings_service.settings import EmbedSettings
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from ortserve_common import cpu, telemetry
from ortserve_common.cpu import parse_cpuinfo
from ortserve_common.telemetry import add_span_processor, setup_tracing

_EXPORTER = InMemorySpanExporter()


class _Model:
    def run_batch(self, batch: list[EncodedInput]) -> np.ndarray:
        return np.array([[len(item), 1.0, 0.0] for item in batch], dtype=np.float32)

    def close(self) -> None:
        pass


class _Tokenizer:
    """Characters are tokens."""

    vocab_size = 1000
    special_count = 0
    max_length = 32

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [[ord(c) % 1000 for c in text] for text in texts]

    def truncate(self, ids: list[int]) -> list[int]:
        return ids[: self.max_length]

    def count_plain(self, text: str) -> int:
        return len(text)


class _Loader:
    def load(self, _path, _kind, _max_length) -> LoadedModel:
        return LoadedModel("embedding", _Model(), _Tokenizer(), 32, 3)  # type: ignore[arg-type]

    def close(self) -> None:
        pass


@pytest.fixture
def spans() -> InMemorySpanExporter:
    if not getattr(_EXPORTER, "installed", False):
        setup_tracing("ortserve-embeddings-test")
        add_span_processor(SimpleSpanProcessor(_EXPORTER))
        _EXPORTER.installed = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    return _EXPORTER


@pytest.fixture
def http(spans: InMemorySpanExporter) -> Iterator[TestClient]:
    # A long batch wait, so the four inputs of one request always run as one batch.
    settings = EmbedSettings(models="fake=/unused", max_wait_ms=50)
    app = create_app(settings, model_table_factory=lambda s: EmbeddingModelTable.load(s, _Loader()))  # type: ignore[arg-type]
    with TestClient(app) as client:
        yield client


def _sample(text: str, name: str, **labels: str) -> float:
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(re.escape(f"{name}{{{label_text}}}" if labels else name) + r" ([0-9.e+-]+)", text)
    return float(match.group(1)) if match else 0.0


def test_embeddings_span_carries_batch_size_and_tokens(http: TestClient, spans: InMemorySpanExporter) -> None:
    response = http.post("/v1/embeddings", json={"model": "fake", "input": ["ab", "cde", "f", "gh"]})
    assert response.status_code == 200
    by_name = {span.name: span for span in spans.get_finished_spans()}
    server, span = by_name["POST /v1/embeddings"], by_name["embeddings fake"]
    assert span.parent.span_id == server.context.span_id
    assert server.start_time <= span.start_time < span.end_time <= server.end_time
    attributes = dict(span.attributes)
    assert attributes["gen_ai.operation.name"] == "embeddings" and attributes["gen_ai.request.model"] == "fake"
    assert attributes["gen_ai.usage.input_tokens"] == 8 == response.json()["usage"]["prompt_tokens"]
    assert attributes["ortserve.inputs"] == 4
    assert attributes["ortserve.batch.size"] == 4 and attributes["ortserve.batch.count"] == 1


def test_rerank_span_and_metrics_move(http: TestClient, spans: InMemorySpanExporter) -> None:
    before = http.get("/metrics").text
    body = {"model": "fake", "query": "q", "documents": ["one", "two", "three"]}
    assert http.post("/v1/rerank", json=body).status_code == 200
    assert http.post("/v1/embeddings", json={"model": "fake", "input": "hello"}).status_code == 200
    after = http.get("/metrics").text
    span = next(s for s in spans.get_finished_spans() if s.name == "rerank fake")
    assert span.attributes["ortserve.rerank.documents"] == 3 and span.attributes["ortserve.inputs"] == 4
    assert span.attributes["gen_ai.usage.input_tokens"] == len("q" + "one" + "two" + "three")

    def moved(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert moved("ortserve_rerank_documents_count", model="fake") == 1
    assert moved("ortserve_rerank_documents_sum", model="fake") == 3
    assert moved("ortserve_rerank_duration_seconds_count", model="fake") == 1
    assert moved("ortserve_embedding_inputs_count", model="fake") == 1
    assert moved("ortserve_embedding_batch_size_count", model="fake") == 2  # one model run per request here
    assert moved("ortserve_embedding_batch_size_sum", model="fake") == 5
    assert moved("ortserve_prompt_tokens_total", model="fake", operation="rerank") == 12
    assert moved("ortserve_prompt_tokens_total", model="fake", operation="embeddings") == 5
    assert moved("ortserve_queue_time_seconds_count") == 2
    assert moved("ortserve_http_requests_total", method="POST", route="/v1/rerank", status="200") == 1
    assert "ortserve_requests_waiting 0.0" in after


def test_metrics_and_the_startup_log_name_the_cpu_and_the_threads_set(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = parse_cpuinfo("vendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t: avx2 avx512f avx512_vnni amx_tile", 2)
    monkeypatch.setattr(cpu, "host_cpu", lambda: fake)
    monkeypatch.setattr(telemetry, "host_cpu", lambda: fake)
    monkeypatch.setenv("EMBED_ENGINE_THREADS", "3")
    settings = EmbedSettings(models="fake=/unused")
    app = create_app(settings, model_table_factory=lambda s: EmbeddingModelTable.load(s, _Loader()))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        text = client.get("/metrics").text
    isa = "avx2,avx512f,avx512_vnni,amx_tile"
    labels = {"family": "", "isa": isa, "model": "Xeon", "model_number": "", "usable_cores": "2"}
    assert _sample(text, "ortserve_cpu_info", **labels, vendor="GenuineIntel") == 1
    line = "cpu Xeon (GenuineIntel), ISA avx2 avx512f avx512_vnni amx_tile, 2 usable cores; engine threads 3 "
    assert line + "(EMBED_ENGINE_THREADS)" in [record.getMessage() for record in caplog.records]
