"""The embeddings service's metrics, and one span per embeddings or rerank request.

The span is recorded when the request is done, with its real start time, as a child of the request's server span:
the request's inputs wait in a shared batcher, so there is no inner work of its own to wrap while it runs. Its
attributes follow the gen_ai.* conventions where they have a name (operation, model, input tokens) and use
ortserve.* for the batching.
"""

from __future__ import annotations

import time

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue
from ortserve_common.telemetry import LATENCY_BUCKETS, ServiceMetrics, started_ns_ago

from embeddings_service.batcher import BatchStats

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
COUNT_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2048)


class EmbeddingMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__(admission=True)
        self.batch_size = self.histogram(
            "ortserve_embedding_batch_size", "Inputs per model run (dynamic batching).", ["model"], BATCH_BUCKETS
        )
        self.batch_seconds = self.histogram(
            "ortserve_embedding_batch_duration_seconds", "Time of one model run.", ["model"], LATENCY_BUCKETS
        )
        self.inputs = self.histogram(
            "ortserve_embedding_inputs", "Inputs per /v1/embeddings request.", ["model"], COUNT_BUCKETS
        )
        self.rerank_documents = self.histogram(
            "ortserve_rerank_documents", "Documents per /v1/rerank request.", ["model"], COUNT_BUCKETS
        )
        self.rerank_seconds = self.histogram(
            "ortserve_rerank_duration_seconds",
            "Time to serve a /v1/rerank request, tokenizing to scores.",
            ["model"],
            LATENCY_BUCKETS,
        )
        self.prompt_tokens = self.counter(
            "ortserve_prompt_tokens", "Input tokens processed, by model and operation.", ["model", "operation"]
        )

    def observe_batch(self, model: str, size: int, run_s: float) -> None:
        """Called by the batcher once per model run (a run may hold inputs of many requests)."""
        self.batch_size.labels(model).observe(size)
        self.batch_seconds.labels(model).observe(run_s)


class EmbeddingTelemetry:
    def __init__(self, metrics: EmbeddingMetrics) -> None:
        """`metrics` are the ones the app's /metrics serves."""
        self.metrics = metrics
        self._tracer = trace.get_tracer("ortserve.embeddings")

    def record(
        self,
        operation: str,
        model: str,
        documents: int,
        inputs: int,
        prompt_tokens: int,
        stats: list[BatchStats],
        started: float,
    ) -> None:
        """`documents`: for rerank, the request's documents (a bi-encoder also embeds the query); `started`: the
        request's perf_counter start."""
        elapsed = time.perf_counter() - started
        self.metrics.prompt_tokens.labels(model, operation).inc(prompt_tokens)
        if operation == "rerank":
            self.metrics.rerank_documents.labels(model).observe(documents)
            self.metrics.rerank_seconds.labels(model).observe(elapsed)
        else:
            self.metrics.inputs.labels(model).observe(inputs)
        runs = {s.batch_id: s for s in stats}
        attributes: dict[str, AttributeValue] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": "ortserve",
            "gen_ai.request.model": model,
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": prompt_tokens,
            "ortserve.inputs": inputs,
            "ortserve.batch.size": max((s.batch_size for s in runs.values()), default=0),
            "ortserve.batch.count": len(runs),
            "ortserve.batch.wait_s": max((s.waited_s for s in stats), default=0.0),
            "ortserve.batch.run_s": sum(s.run_s for s in runs.values()),
        }
        if operation == "rerank":
            attributes["ortserve.rerank.documents"] = documents
        span = self._tracer.start_span(
            f"{operation} {model}", kind=SpanKind.INTERNAL, attributes=attributes, start_time=started_ns_ago(elapsed)
        )
        span.end()
