"""FastAPI dependencies: the serving objects that the lifespan put on app.state.

Async on purpose: FastAPI runs a plain `def` dependency on its thread pool, a thread hop per request for nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from embeddings_service.model_table import EmbeddingModelTable
from embeddings_service.serving_embeddings import EmbeddingServing
from embeddings_service.serving_rerank import RerankServing


async def _embedding_serving(request: Request) -> EmbeddingServing:
    return request.app.state.embedding_serving


async def _rerank_serving(request: Request) -> RerankServing:
    return request.app.state.rerank_serving


async def _models(request: Request) -> EmbeddingModelTable:
    return request.app.state.models


EmbeddingServingDep = Annotated[EmbeddingServing, Depends(_embedding_serving)]
RerankServingDep = Annotated[RerankServing, Depends(_rerank_serving)]
ModelTableDep = Annotated[EmbeddingModelTable, Depends(_models)]
