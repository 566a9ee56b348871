"""POST /v1/embeddings: inputs → tokens → batched model runs → (shortened) vectors as floats or base64."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import cast

import numpy as np
from ortserve_common.errors import invalid_request
from ortserve_common.limits.limiter import charge_tokens
from ortserve_common.logs import record_request_fields
from ortserve_common.protocol.embeddings import EmbeddingData, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage

from embeddings_service.engine.pooling import shorten
from embeddings_service.engine.types import EncodedInput
from embeddings_service.inputs import check_token_ids, encode_texts
from embeddings_service.model_table import ServedModel
from embeddings_service.serving_base import BaseServing


def _as_lists(value: str | list[str] | list[int] | list[list[int]]) -> tuple[list[str] | list[list[int]], list[str]]:
    """The four OpenAI input shapes as one list of inputs, with the `param` each refusal should name."""
    if isinstance(value, str):
        return [value], ["input"]
    if value and all(isinstance(v, int) for v in value):
        return [cast(list[int], list(value))], ["input"]
    return cast(list[str] | list[list[int]], list(value)), [f"input[{i}]" for i in range(len(value))]


def encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector.astype(np.float32).tolist()


class EmbeddingServing(BaseServing):
    def _check_request(self, request: EmbeddingRequest, model: ServedModel, count: int) -> None:
        if model.kind == "rerank":
            raise invalid_request(
                f"Model '{model.id}' is a cross-encoder reranker and gives no embeddings; use it on /v1/rerank.",
                "model",
                "model_not_supported",
            )
        if count == 0:
            raise invalid_request("input is empty; send a string, an array of strings or of token ids.", "input")
        if count > self.settings.max_inputs:
            raise invalid_request(
                f"input has {count} items; at most {self.settings.max_inputs} are allowed per request.", "input"
            )
        if request.dimensions is not None and model.dimensions and request.dimensions > model.dimensions:
            raise invalid_request(
                f"dimensions must be between 1 and {model.dimensions} for model '{model.id}' (got "
                f"{request.dimensions}).",
                "dimensions",
            )

    def _encode(self, request: EmbeddingRequest, model: ServedModel) -> list[EncodedInput]:
        inputs, params = _as_lists(request.input)
        self._check_request(request, model, len(inputs))
        truncate = self.settings.default_truncate if request.truncate is None else request.truncate
        if isinstance(inputs[0], str):
            return encode_texts(model, inputs, params, request.input_type, request.instruction, truncate)
        return check_token_ids(model, inputs, params, request.input_type, request.instruction, truncate)

    async def create(self, request: EmbeddingRequest) -> EmbeddingResponse:
        started = time.perf_counter()
        model = self.usable_model(request.model)
        items = await asyncio.to_thread(self._encode, request, model)
        record_request_fields(tokenize_s=round(time.perf_counter() - started, 4))
        slot = await self.admit()
        try:
            vectors, stats = await model.batcher.submit(items)
        finally:
            slot.release()
        if request.dimensions is not None:
            if request.dimensions > vectors.shape[1]:
                raise invalid_request(
                    f"dimensions must be between 1 and {vectors.shape[1]} for model '{model.id}'.", "dimensions"
                )
            vectors = shorten(vectors, request.dimensions)
        prompt_tokens = sum(len(item) for item in items)
        self.record(model, len(items), prompt_tokens, stats, started)
        await charge_tokens(prompt_tokens, "prompt")
        data = [
            EmbeddingData.model_construct(
                object="embedding", index=i, embedding=encode_vector(vector, request.encoding_format)
            )
            for i, vector in enumerate(vectors)
        ]
        return EmbeddingResponse(
            data=data,
            model=request.model,
            usage=EmbeddingUsage(prompt_tokens=prompt_tokens, total_tokens=prompt_tokens),
        )
