"""Observability end to end through nginx: one trace across proxy, registry and services; /metrics; JSON logs.

The stack runs with ORTSERVE_TRACES=1, so the services export their spans to tools/otlp_receiver.py, which writes
them to run/traces.jsonl. nginx emits no spans; it passes (or mints) the traceparent, to the service and to the
registry's key check alike.
"""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id
from ortserve_common.models_dir import models_dir
from stack_testing import Stack

MODELS_DIR = models_dir()
CHAT_MODEL = "smollm2-135m-instruct"
EMBED_MODEL = "all-minilm-l6-v2"
AUTH = "<key check>"  # the registry's /internal/auth span, whatever method nginx's subrequest uses


def _fresh_key(stack: Stack, name: str) -> str:
    """A key never used before: the proxy caches key checks for 5 s, and a cached check never reaches the registry."""
    with stack.http() as http:
        created = http.post("/admin/keys", json={"name": name}, headers={"Authorization": f"Bearer {stack.admin_key}"})
    assert created.status_code == 201, created.text
    return created.json()["key"]


def _wait_spans(
    stack: Stack,
    trace_id: str,
    names: set[str],
    services: set[str] | None = None,
    counts: dict[str, int] | None = None,
) -> dict[str, list[dict]]:
    """The trace's spans by name, once every name in `names` (and every service in `services`, and `counts[name]`
    spans of a name) has arrived: each service exports its spans in batches, so one batch can land before another,
    even two spans of one name from one service."""
    found: dict[str, list[dict]] = {}

    def arrived() -> bool:
        found.clear()
        for span in stack.spans(trace_id):
            name = AUTH if span["name"].endswith(" /internal/auth") else span["name"]
            found.setdefault(name, []).append(span)
        seen = {span["service"] for group in found.values() for span in group}
        enough = all(len(found.get(name, [])) >= n for name, n in (counts or {}).items())
        return names <= set(found) and (services or set()) <= seen and enough

    stack.wait_for(arrived, timeout_s=20, what=f"spans {sorted(names)} of trace {trace_id}")
    return found


def test_one_trace_covers_the_key_checks_chat_and_embeddings(stack: Stack) -> None:
    # The client's own trace: a root span, and the instrumented httpx client's spans under it, whose traceparent
    # nginx passes on. The OpenAI SDK's own client is not traced, so it is given an httpx.Client.
    provider, exported = TracerProvider(), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    chat_key, embed_key = _fresh_key(stack, "trace-chat"), _fresh_key(stack, "trace-embed")
    with httpx.Client(verify=stack.ssl_context(), timeout=120) as http:
        HTTPXClientInstrumentor.instrument_client(http, tracer_provider=provider)

        def client(key: str) -> openai.OpenAI:
            return openai.OpenAI(base_url=stack.base_url + "/v1", api_key=key, max_retries=0, http_client=http)

        with provider.get_tracer("e2e").start_as_current_span("answer a question") as root:
            chat = client(chat_key).chat.completions.with_raw_response.create(
                model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4, temperature=0
            )
            embed = client(embed_key).embeddings.with_raw_response.create(model=EMBED_MODEL, input=["a", "b"])
    trace_id = format_trace_id(root.get_span_context().trace_id)
    assert chat.headers["x-request-id"] == embed.headers["x-request-id"] == trace_id
    assert chat.parse().usage.completion_tokens == 4 and len(embed.parse().data) == 2

    client_spans = [s for s in exported.get_finished_spans() if s.name != "answer a question"]
    assert len(client_spans) == 2 and all(s.parent.span_id == root.get_span_context().span_id for s in client_spans)
    chat_call, embed_call = (format_span_id(s.context.span_id) for s in client_spans)

    spans = _wait_spans(
        stack,
        trace_id,
        {AUTH, "POST /v1/chat/completions", f"chat {CHAT_MODEL}", "POST /v1/embeddings", f"embeddings {EMBED_MODEL}"},
        counts={AUTH: 2},
    )
    (chat_server,) = spans["POST /v1/chat/completions"]
    (generation,) = spans[f"chat {CHAT_MODEL}"]
    (embed_server,) = spans["POST /v1/embeddings"]
    (embedding,) = spans[f"embeddings {EMBED_MODEL}"]
    auth = spans[AUTH]
    # nginx adds no span: the service and the key check are both children of the client's call.
    assert sorted(s["parent_span_id"] for s in auth) == sorted([chat_call, embed_call])
    assert {s["service"] for s in auth} == {"ortserve-models"}
    assert chat_server["parent_span_id"] == chat_call and chat_server["service"] == "ortserve-chat"
    assert embed_server["parent_span_id"] == embed_call and embed_server["service"] == "ortserve-embeddings"
    assert generation["parent_span_id"] == chat_server["span_id"]
    assert embedding["parent_span_id"] == embed_server["span_id"]
    assert chat_server["kind"] == embed_server["kind"] == "server" and generation["kind"] == "internal"

    attributes = generation["attributes"]
    assert attributes["gen_ai.request.model"] == CHAT_MODEL and attributes["gen_ai.request.max_tokens"] == 4
    assert attributes["gen_ai.request.temperature"] == 0 and attributes["gen_ai.request.top_p"] == 1.0
    assert attributes["gen_ai.usage.output_tokens"] == 4 and attributes["gen_ai.response.finish_reasons"] == ["length"]
    assert attributes["gen_ai.usage.input_tokens"] == chat.parse().usage.prompt_tokens
    assert 0 < attributes["gen_ai.latency.time_to_first_token"] < attributes["gen_ai.latency.e2e"]
    assert "gen_ai.latency.time_in_queue" in attributes and "gen_ai.input.messages" not in attributes
    assert embedding["attributes"]["ortserve.batch.size"] >= 2 and embedding["attributes"]["gen_ai.usage.input_tokens"]


def test_a_minted_traceparent_ties_the_key_check_to_the_service_and_its_logs(stack: Stack) -> None:
    key = _fresh_key(stack, "trace-minted")
    with stack.http() as http:
        response = http.post(
            "/v1/rerank",
            json={"model": EMBED_MODEL, "query": "capital of France", "documents": ["Paris.", "Bananas."]},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 200, response.text
    trace_id = response.headers["x-request-id"]
    spans = _wait_spans(stack, trace_id, {AUTH, "POST /v1/rerank", f"rerank {EMBED_MODEL}"})
    minted_parent = trace_id[:16]  # nginx mints `00-$request_id-<its first 16 hex>-01`
    assert spans[AUTH][0]["parent_span_id"] == spans["POST /v1/rerank"][0]["parent_span_id"] == minted_parent
    rerank = spans[f"rerank {EMBED_MODEL}"][0]["attributes"]
    assert rerank["ortserve.rerank.documents"] == 2 and rerank["gen_ai.usage.input_tokens"] > 0

    server_span = spans["POST /v1/rerank"][0]["span_id"]
    lines = [
        json.loads(line) for line in (stack.run_dir / "logs/embeddings.log").read_text().splitlines() if line[:1] == "{"
    ]
    (access,) = [line for line in lines if line.get("trace_id") == trace_id and line.get("path") == "/v1/rerank"]
    assert access["span_id"] == server_span and access["request_id"] == trace_id and access["status"] == 200


def test_an_admin_load_is_one_trace_from_registry_to_chat_and_back(stack: Stack) -> None:
    """The registry forwards the load to chat, and chat tells the registry at once: both calls carry the trace."""
    admin = {"Authorization": f"Bearer {stack.admin_key}"}
    body = {"id": "phi3-tiny-traced", "path": str(MODELS_DIR / "phi3-tiny"), "service": "chat"}
    with stack.http() as http:
        response = http.post("/admin/models/load", json=body, headers=admin)
        assert response.status_code == 200, response.text
        try:
            trace_id = response.headers["x-request-id"]
            spans = _wait_spans(
                stack,
                trace_id,
                {"POST /admin/models/load", "POST", "POST /internal/instances"},
                services={"ortserve-models", "ortserve-chat"},
            )
        finally:
            http.post("/admin/models/unload", json={"id": "phi3-tiny-traced"}, headers=admin)
    kinds = {(s["service"], s["kind"], s["name"]): s for group in spans.values() for s in group}
    registry_load = kinds[("ortserve-models", "server", "POST /admin/models/load")]
    forward = kinds[("ortserve-models", "client", "POST")]
    chat_load = kinds[("ortserve-chat", "server", "POST /admin/models/load")]
    heartbeat = kinds[("ortserve-chat", "client", "POST")]
    registered = kinds[("ortserve-models", "server", "POST /internal/instances")]
    assert registry_load["parent_span_id"] == trace_id[:16]  # the span id nginx minted
    assert forward["parent_span_id"] == registry_load["span_id"]
    assert chat_load["parent_span_id"] == forward["span_id"]
    assert heartbeat["parent_span_id"] == chat_load["span_id"]
    assert registered["parent_span_id"] == heartbeat["span_id"]


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there is none yet)."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(re.escape(name) + r"(?:\{(.*)\})? ([0-9.e+-]+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "").split(",") for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.mark.parametrize("path", ["/metrics", "/v1/metrics"])
def test_metrics_are_scraped_from_the_services_never_through_the_proxy(stack: Stack, path: str) -> None:
    with stack.http() as http:
        assert http.get(path).status_code == 404
    services = {
        name: f"http://127.0.0.1:{stack.ports[port]}/metrics"
        for name, port in (("chat", "CHAT_PORT"), ("embeddings", "EMBED_PORT"), ("models", "MODELS_PORT"))
    }
    before = {name: httpx.get(url).text for name, url in services.items()}
    client = stack.openai(api_key=_fresh_key(stack, "metrics"))
    list(
        client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3, stream=True
        )
    )
    client.embeddings.create(model=EMBED_MODEL, input="hello")
    after = {name: httpx.get(url).text for name, url in services.items()}

    def moved(service: str, name: str, **labels: str) -> float:
        return _metric(after[service], name, **labels) - _metric(before[service], name, **labels)

    assert moved("chat", "ortserve_time_to_first_token_seconds_count", model=CHAT_MODEL) == 1
    assert moved("chat", "ortserve_inter_token_latency_seconds_count", model=CHAT_MODEL) == 2
    assert moved("chat", "ortserve_completion_tokens_total", model=CHAT_MODEL) == 3
    assert moved("chat", "ortserve_http_requests_total", method="POST", route="/v1/chat/completions", status="200") == 1
    assert moved("embeddings", "ortserve_embedding_batch_size_count", model=EMBED_MODEL) >= 1
    assert moved("embeddings", "ortserve_prompt_tokens_total", model=EMBED_MODEL, operation="embeddings") > 0
    assert moved("models", "ortserve_http_requests_total", route="/internal/auth", status="204") >= 1  # any method
    assert "ortserve_requests_waiting" in after["chat"] and "ortserve_requests_running" in after["embeddings"]
