"""FastAPI dependencies: the serving objects that the lifespan put on app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from embeddings_service.registry import ModelRegistry
from embeddings_service.serving_embeddings import EmbeddingServing
from embeddings_service.serving_rerank import RerankServing


def _embedding_serving(request: Request) -> EmbeddingServing:
    return request.app.state.embedding_serving


def _rerank_serving(request: Request) -> RerankServing:
    return request.app.state.rerank_serving


def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


EmbeddingServingDep = Annotated[EmbeddingServing, Depends(_embedding_serving)]
RerankServingDep = Annotated[RerankServing, Depends(_rerank_serving)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
