"""What the embeddings and rerank serving share: model checks, admission, and the access-log fields."""

from __future__ import annotations

import time

from ortserve_common.admission import AdmissionController, AdmissionSlot
from ortserve_common.errors import invalid_request
from ortserve_common.logs import record_request_fields

from embeddings_service.batcher import BatchStats
from embeddings_service.model_table import EmbeddingModelTable, ServedModel
from embeddings_service.observability import EmbeddingTelemetry
from embeddings_service.settings import EmbedSettings


class BaseServing:
    operation = "embeddings"  # the gen_ai.operation.name of the request's span

    def __init__(
        self,
        models: EmbeddingModelTable,
        admission: AdmissionController,
        settings: EmbedSettings,
        telemetry: EmbeddingTelemetry,
    ) -> None:
        self.models = models
        self.admission = admission
        self.settings = settings
        self.telemetry = telemetry

    def usable_model(self, model_id: str) -> ServedModel:
        """The model, or a 400 that says why it cannot serve (an LLM folder built without hidden states)."""
        model = self.models.get(model_id)
        if model.loaded.unsupported_reason:
            raise invalid_request(
                f"Model '{model_id}' cannot serve this request: {model.loaded.unsupported_reason}.",
                "model",
                "model_not_supported",
            )
        return model

    async def admit(self) -> AdmissionSlot:
        slot = await self.admission.acquire()
        record_request_fields(queued_s=round(slot.queued_s, 4))
        self.telemetry.metrics.observe_queue(slot.queued_s)
        return slot

    def record(
        self, model: ServedModel, inputs: int, prompt_tokens: int, stats: list[BatchStats], started: float
    ) -> None:
        runs = {s.batch_id: s for s in stats}  # a request's inputs may share runs, or span several
        record_request_fields(
            model=model.id,
            inputs=inputs,
            prompt_tokens=prompt_tokens,
            batches=len(runs),
            batch_size_max=max((s.batch_size for s in runs.values()), default=0),
            batch_wait_s=round(max((s.waited_s for s in stats), default=0.0), 4),
            inference_s=round(sum(s.run_s for s in runs.values()), 4),
            serve_s=round(time.perf_counter() - started, 4),
        )
        documents = inputs if model.kind == "rerank" else inputs - 1  # a bi-encoder also embeds the query
        self.telemetry.record(self.operation, model.id, documents, inputs, prompt_tokens, stats, started)
