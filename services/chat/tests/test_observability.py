"""The gen_ai span and the Prometheus metrics of chat and text completions, on a scripted fake engine."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from chat_service.engine import GenerationRequest, TokenEvent
from chat_service.engine.thread_events import InFlight
from chat_service.engine.types import EngineStats
from chat_service.main import create_app
from chat_service.serving.generation_telemetry import GenerationTelemetry
from chat_service.serving.observability import ChatMetrics
from chat_service.serving.request_run import RequestRun
from chat_service.settings import ChatSettings
from chat_testing import CharTokenizer
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from ortserve_common import cpu, telemetry
from ortserve_common.admission import AdmissionController
from ortserve_common.cpu import parse_cpuinfo
from ortserve_common.errors import OpenAIError
from ortserve_common.protocol.chat import ChatCompletionRequest
from ortserve_common.telemetry import add_span_processor, setup_tracing

SCRIPT = "Hello, world!"
_EXPORTER = InMemorySpanExporter()


class ScriptEngine:
    """Characters are tokens; every generation replays SCRIPT one character per step."""

    name = "script"
    context_length = 64
    system_fingerprint = "fp_testdouble"

    def __init__(self) -> None:
        self.in_flight = InFlight()  # generate() does not count in it: unloading never waits
        self.tokenizer = CharTokenizer()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        steps = min(len(SCRIPT), request.max_tokens)
        for i, char in enumerate(SCRIPT[:steps]):
            await asyncio.sleep(0.001)
            finish = None if i + 1 < steps else ("length" if steps == request.max_tokens else "stop")
            yield TokenEvent(ord(char), char, finish)

    def stats(self) -> EngineStats:
        return EngineStats(rows_decoding=0, rows_waiting=0)

    def close(self) -> None:
        pass


@pytest.fixture
def spans() -> InMemorySpanExporter:
    if not getattr(_EXPORTER, "installed", False):
        setup_tracing("ortserve-chat-test")
        add_span_processor(SimpleSpanProcessor(_EXPORTER))
        _EXPORTER.installed = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    return _EXPORTER


def _client(tmp_path: Path, **settings: object) -> TestClient:
    config = ChatSettings(model_path=tmp_path, model_id="fake", data_dir=tmp_path / "data", **settings)  # type: ignore[arg-type]
    return TestClient(create_app(config, engine_factory=lambda _path, _settings: ScriptEngine()))


@pytest.fixture
def http(tmp_path: Path, spans: InMemorySpanExporter) -> Iterator[TestClient]:
    with _client(tmp_path, default_temperature=0.5) as client:
        yield client


def _by_name(spans: InMemorySpanExporter) -> dict[str, object]:
    return {span.name: span for span in spans.get_finished_spans()}


def _sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus exposition (0 when the series does not exist yet)."""
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # the exposition sorts them
    pattern = re.escape(f"{name}{{{label_text}}}" if labels else name) + r" ([0-9.e+-]+)"
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_chat_span_is_a_child_of_the_server_span_with_gen_ai_attributes(
    http: TestClient, spans: InMemorySpanExporter
) -> None:
    body = {"model": "fake", "messages": [{"role": "user", "content": "secret prompt"}], "top_p": 0.9}
    assert http.post("/v1/chat/completions", json=body).status_code == 200
    by_name = _by_name(spans)
    server, generation = by_name["POST /v1/chat/completions"], by_name["chat fake"]
    assert server.kind == SpanKind.SERVER and generation.kind == SpanKind.INTERNAL
    assert generation.parent.span_id == server.context.span_id
    assert generation.context.trace_id == server.context.trace_id
    attributes = dict(generation.attributes)
    prompt_tokens = len("<user>secret prompt<assistant>")
    assert {k: attributes[k] for k in attributes if not k.startswith("gen_ai.latency")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "ortserve",
        "gen_ai.request.model": "fake",
        "gen_ai.request.temperature": 0.5,  # the service default: the request gave none
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.choice.count": 1,
        "gen_ai.request.max_tokens": 64 - prompt_tokens,  # resolved: default capped by the context
        "gen_ai.response.model": "fake",
        "gen_ai.usage.input_tokens": prompt_tokens,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.output_tokens": len(SCRIPT),
        "gen_ai.response.finish_reasons": ("stop",),
        "ortserve.priority": "interactive",  # no X-Ortserve-Key-Priority header: the default
    }
    latency = {k: v for k, v in attributes.items() if k.startswith("gen_ai.latency")}
    assert set(latency) == {"gen_ai.latency.time_in_queue", "gen_ai.latency.time_to_first_token", "gen_ai.latency.e2e"}
    assert 0 <= latency["gen_ai.latency.time_in_queue"] < latency["gen_ai.latency.e2e"]
    assert 0 < latency["gen_ai.latency.time_to_first_token"] < latency["gen_ai.latency.e2e"]
    assert generation.start_time >= server.start_time and generation.end_time <= server.end_time
    assert "secret" not in json.dumps(attributes)  # no prompt or output text unless trace_content is on


def test_trace_content_records_prompt_and_streamed_output(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    with _client(tmp_path, trace_content=True) as http:
        body = {"model": "fake", "prompt": "Say it", "max_tokens": 5, "stream": True}
        assert http.post("/v1/completions", json=body).status_code == 200
    generation = _by_name(spans)["text_completion fake"]
    attributes = generation.attributes
    assert json.loads(attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say it"}]}
    ]
    assert json.loads(attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello"}], "finish_reason": "length"}
    ]
    assert attributes["gen_ai.request.max_tokens"] == 5 and attributes["gen_ai.usage.output_tokens"] == 5
    assert generation.status.status_code == trace.StatusCode.UNSET


def test_metrics_move_after_a_request(http: TestClient) -> None:
    before = http.get("/metrics").text
    assert _sample(before, "ortserve_requests_running") == 0 and _sample(before, "ortserve_requests_waiting") == 0
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    assert http.post("/v1/chat/completions", json=body).status_code == 200
    after = http.get("/metrics").text
    moved = {
        name: _sample(after, name, **labels) - _sample(before, name, **labels)
        for name, labels in [
            ("ortserve_time_to_first_token_seconds_count", {"model": "fake"}),
            ("ortserve_inter_token_latency_seconds_count", {"model": "fake"}),
            ("ortserve_e2e_request_latency_seconds_count", {"model": "fake"}),
            ("ortserve_queue_time_seconds_count", {}),
            ("ortserve_prompt_tokens_total", {"model": "fake"}),
            ("ortserve_completion_tokens_total", {"model": "fake"}),
            ("ortserve_request_finished_total", {"model": "fake", "finish_reason": "stop"}),
            ("ortserve_http_requests_total", {"method": "POST", "route": "/v1/chat/completions", "status": "200"}),
        ]
    }
    assert moved == {
        "ortserve_time_to_first_token_seconds_count": 1,
        "ortserve_inter_token_latency_seconds_count": len(SCRIPT) - 1,
        "ortserve_e2e_request_latency_seconds_count": 1,
        "ortserve_queue_time_seconds_count": 1,
        "ortserve_prompt_tokens_total": len("<user>hi<assistant>"),
        "ortserve_completion_tokens_total": len(SCRIPT),
        "ortserve_request_finished_total": 1,
        "ortserve_http_requests_total": 1,
    }
    assert _sample(after, "ortserve_requests_running") == 0  # the slot was given back


def test_each_app_has_its_own_metrics(tmp_path: Path, http: TestClient) -> None:
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
    assert http.post("/v1/chat/completions", json=body).status_code == 200
    with _client(tmp_path) as other:
        assert _sample(other.get("/metrics").text, "ortserve_completion_tokens_total", model="fake") == 0


async def test_a_request_refused_or_cancelled_in_the_queue_still_ends_its_span(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    admission = AdmissionController(max_running=1, max_waiting=1, queue_timeout_s=5)
    telemetry = GenerationTelemetry(ChatMetrics())
    request = ChatCompletionRequest(model="fake", messages=[{"role": "user", "content": "hi"}])

    async def enter() -> RequestRun:
        return await RequestRun(request, [], admission, telemetry, ChatSettings(model_path=tmp_path)).__aenter__()

    held = await admission.acquire()
    waiter = asyncio.create_task(enter())
    while not admission.waiting:  # until the waiter is queued, however busy the machine
        await asyncio.sleep(0.001)
    with pytest.raises(OpenAIError):  # one running, one waiting: the queue is full
        await enter()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    held.release()
    refused, cancelled = sorted(spans.get_finished_spans(), key=lambda s: "ortserve.cancelled" in s.attributes)
    assert refused.status.status_code == trace.StatusCode.ERROR and refused.attributes["error.type"] == "429"
    assert cancelled.attributes["ortserve.cancelled"] is True
    assert cancelled.status.status_code == trace.StatusCode.UNSET  # the client left: not our error


def test_metrics_and_the_startup_log_name_the_cpu_and_the_threads_it_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A one-core container on an AVX2-only EPYC, whatever this machine is: the threads follow its usable cores.
    flags = "flags\t: sse2 avx avx2 fma"
    fake = parse_cpuinfo(f"vendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t: 49\nmodel name\t: EPYC\n{flags}", 1)
    monkeypatch.setattr(cpu, "host_cpu", lambda: fake)
    monkeypatch.setattr(telemetry, "host_cpu", lambda: fake)
    with caplog.at_level(logging.INFO), _client(tmp_path) as http:
        text = http.get("/metrics").text
    labels = {"family": "23", "isa": "avx2", "model": "EPYC", "model_number": "49", "usable_cores": "1"}
    assert _sample(text, "ortserve_cpu_info", **labels, vendor="AuthenticAMD") == 1
    messages = [record.getMessage() for record in caplog.records]
    assert (
        "cpu EPYC (AuthenticAMD family 23 model 49), ISA avx2, 1 usable cores; engine threads 1 (the usable "
        "cores)" in messages
    )
    assert any(m.startswith("loaded fake from ") and ", 1 threads," in m for m in messages), messages
