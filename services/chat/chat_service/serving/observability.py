"""The chat service's metrics: request latencies, token counts, and each engine's figures read at scrape time. The
gen_ai span of each generation is in generation_telemetry.py."""

from __future__ import annotations

from collections.abc import Iterator

from ortserve_common.priority import PRIORITIES
from ortserve_common.telemetry import ServiceMetrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chat_service.models.pool import ModelPool

TTFT_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)
E2E_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class ChatMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__(admission=True)
        self.ttft = self.histogram(
            "ortserve_time_to_first_token_seconds",
            "Time from a generation's start to its first token.",
            ["model"],
            TTFT_BUCKETS,
        )
        self.itl = self.histogram(
            "ortserve_inter_token_latency_seconds", "Time between consecutive generated tokens.", ["model"], ITL_BUCKETS
        )
        self.e2e = self.histogram(
            "ortserve_e2e_request_latency_seconds",
            "Time from asking for an admission slot to the last token, for requests that finished.",
            ["model"],
            E2E_BUCKETS,
        )
        self.prompt_tokens = self.counter("ortserve_prompt_tokens", "Prompt tokens processed.", ["model"])
        self.cached_prompt_tokens = self.counter(
            "ortserve_prompt_cached_tokens", "Prompt tokens whose KV came from the prefix cache.", ["model"]
        )
        self.completion_tokens = self.counter("ortserve_completion_tokens", "Tokens generated.", ["model"])
        self.finished = self.counter(
            "ortserve_request_finished",
            "Generations ended, by finish reason (abort: cancelled or failed).",
            ["model", "finish_reason"],
        )
        self._engines = EngineCollector()
        self.registry.register(self._engines)

    def track_engines(self, pool: ModelPool) -> None:
        """The models whose engines /metrics reports (the lifespan makes the pool after the app exists)."""
        self._engines.pool = pool


# Each engine's state, per model, read from engine.stats() when /metrics is scraped (never pushed from the scheduler
# thread, which must not wait on anything but its decoder): (name, help, counter or gauge, EngineStats field).
ENGINE_SERIES = (
    (
        "ortserve_engine_rows_decoding",
        "Rows in the model's running batch (generator: generations running).",
        "gauge",
        "rows_decoding",
    ),
    (
        "ortserve_engine_rows_waiting",
        "Generations submitted to the model's engine and not yet in a KV slot.",
        "gauge",
        "rows_waiting",
    ),
    ("ortserve_engine_kv_slots", "KV slots the model's batched engine has (max_batch_size).", "gauge", "kv_slots"),
    (
        "ortserve_engine_kv_slots_used",
        "KV slots in use: decoding rows and a long prompt being prefilled.",
        "gauge",
        "kv_slots_used",
    ),
    ("ortserve_engine_kv_positions_used", "Positions cached in the KV slots in use.", "gauge", "kv_positions_used"),
    (
        "ortserve_engine_prefix_cache_hit_tokens",
        "Prompt tokens whose KV the prefix cache supplied.",
        "counter",
        "prefix_cache_hit_tokens",
    ),
    ("ortserve_engine_prefix_cache_blocks", "Blocks the model's prefix cache holds.", "gauge", "prefix_cache_blocks"),
    (
        "ortserve_engine_decode_steps",
        "Batched decode steps (generator: tokens generated); its rate is steps/s.",
        "counter",
        "decode_steps",
    ),
    (
        "ortserve_engine_spec_verify_steps",
        "Prompt-lookup verify calls: steps of a row decoding alone that checked its drafts in one call.",
        "counter",
        "spec_verify_steps",
    ),
    (
        "ortserve_engine_spec_draft_tokens",
        "Prompt-lookup tokens drafted into verify calls.",
        "counter",
        "spec_draft_tokens",
    ),
    (
        "ortserve_engine_spec_accepted_tokens",
        "Drafted tokens the row's sampler drew (accepted): tokens gained over one per step.",
        "counter",
        "spec_accepted_tokens",
    ),
    (
        "ortserve_engine_spec_rows_given_up",
        "Rows that stopped speculating for the rest of their reply: the lookup seldom guessed their tokens.",
        "counter",
        "spec_rows_given_up",
    ),
)


class EngineCollector(Collector):
    def __init__(self) -> None:
        self.pool: ModelPool | None = None

    def collect(self) -> Iterator[Metric]:
        yield from self._engine_series()
        yield from self._priority_series()

    def _priority_series(self) -> Iterator[Metric]:
        """Per model and priority (ortserve_common.priority): who waits where, and who holds the admitted places."""
        labels = ["model", "priority"]
        engine_queue = GaugeMetricFamily(
            "ortserve_engine_queue_depth",
            "Generations waiting in the model's engine for a KV slot (generator: a worker), by priority.",
            labels=labels,
        )
        admission_queue = GaugeMetricFamily(
            "ortserve_admission_queue_depth", "Requests queued for one of the model's admission places.", labels=labels
        )
        admitted = GaugeMetricFamily(
            "ortserve_admission_running", "Requests holding one of the model's admission places.", labels=labels
        )
        for model in self.pool.models() if self.pool is not None else []:
            stats = model.engine.stats()
            engine_waiting = {
                "interactive": stats.rows_waiting - stats.rows_waiting_batch,
                "batch": stats.rows_waiting_batch,
            }
            for priority in PRIORITIES:
                engine_queue.add_metric([model.id, priority], max(0, engine_waiting[priority]))
                admission_queue.add_metric([model.id, priority], model.admission.waiting_for(priority))
                admitted.add_metric([model.id, priority], model.admission.running_for(priority))
        yield from (engine_queue, admission_queue, admitted)

    def _engine_series(self) -> Iterator[Metric]:
        families: list[tuple[GaugeMetricFamily | CounterMetricFamily, str]] = [
            (
                (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, text, labels=["model"]),
                field,
            )
            for name, text, kind, field in ENGINE_SERIES
        ]
        for model in self.pool.models() if self.pool is not None else []:
            stats = model.engine.stats()
            for family, field in families:
                family.add_metric([model.id], getattr(stats, field))
        for family, _ in families:
            yield family
