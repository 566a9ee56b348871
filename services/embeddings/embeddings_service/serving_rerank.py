"""POST /v1/rerank: score each document against the query, best first.

A cross-encoder model scores each (query, document) pair (sigmoid of its logit, 0–1). An embedding model ranks by
the cosine similarity of the query's and the documents' embeddings (−1–1), with the model's `query` and `document`
prefixes when it has a prefix table.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from ortserve_common.errors import invalid_request
from ortserve_common.limits.limiter import charge_tokens
from ortserve_common.logs import record_request_fields
from ortserve_common.protocol.common import new_id
from ortserve_common.protocol.rerank import (
    RerankRequest,
    RerankResponse,
    RerankResult,
    RerankResultDocument,
    RerankUsage,
)

from embeddings_service.engine.pooling import l2_normalize
from embeddings_service.engine.types import EncodedInput
from embeddings_service.inputs import encode_pairs, encode_texts
from embeddings_service.model_table import ServedModel
from embeddings_service.serving_base import BaseServing


class RerankServing(BaseServing):
    operation = "rerank"

    def _check_request(self, request: RerankRequest, documents: list[str]) -> None:
        if request.query == "":
            raise invalid_request("query is an empty string.", "query")
        if not documents:
            raise invalid_request("documents is empty; send at least one document.", "documents")
        if len(documents) > self.settings.max_documents:
            raise invalid_request(
                f"documents has {len(documents)} items; at most {self.settings.max_documents} are allowed per request.",
                "documents",
            )
        for i, text in enumerate(documents):
            if text == "":
                raise invalid_request(f"documents[{i}] is an empty string.", f"documents[{i}]")
        top_n, name = request.requested_top_n()
        if top_n is not None and top_n < 1:
            raise invalid_request(f"{name} must be at least 1 (got {top_n}).", name)

    def _encode(self, request: RerankRequest, model: ServedModel, documents: list[str]) -> list[EncodedInput]:
        self._check_request(request, documents)
        truncate = self.settings.default_truncate if request.truncate is None else request.truncate
        params = [f"documents[{i}]" for i in range(len(documents))]
        if model.kind == "rerank":
            return encode_pairs(model, request.query, documents, params, truncate)
        query = encode_texts(model, [request.query], ["query"], "query", None, truncate)
        return query + encode_texts(model, documents, params, "document", None, truncate)

    async def create(self, request: RerankRequest) -> RerankResponse:
        started = time.perf_counter()
        model = self.usable_model(request.model)
        documents = request.document_texts()
        items = await asyncio.to_thread(self._encode, request, model, documents)
        record_request_fields(tokenize_s=round(time.perf_counter() - started, 4))
        slot = await self.admit()
        try:
            outputs, stats = await model.batcher.submit(items)
        finally:
            slot.release()
        if model.kind == "rerank":
            scores = outputs.reshape(-1)
        else:
            vectors = l2_normalize(outputs)  # cosine, even for a model configured not to normalise
            scores = vectors[1:] @ vectors[0]
        prompt_tokens = sum(len(item) for item in items)
        self.record(model, len(items), prompt_tokens, stats, started)
        await charge_tokens(prompt_tokens, "prompt")
        top_n, _ = request.requested_top_n()
        # Stable sort: equal scores keep the documents' order, so results are deterministic.
        order = np.argsort(-scores, kind="stable")[: top_n or len(documents)]
        results = [
            RerankResult(
                index=int(i),
                relevance_score=float(scores[i]),
                document=RerankResultDocument(text=documents[i]) if request.return_documents else None,
            )
            for i in order
        ]
        return RerankResponse(
            id=new_id("rerank"),
            model=request.model,
            results=results,
            usage=RerankUsage(prompt_tokens=prompt_tokens, total_tokens=prompt_tokens),
        )
