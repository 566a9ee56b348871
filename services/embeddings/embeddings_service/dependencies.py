"""FastAPI dependencies: the serving objects that the lifespan put on app.state.

Async on purpose: FastAPI runs a plain `def` dependency on its thread pool, a thread hop per request for nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from ortserve_common.registration import RegistryClient

from embeddings_service.registry import ModelRegistry
from embeddings_service.serving_embeddings import EmbeddingServing
from embeddings_service.serving_rerank import RerankServing
from embeddings_service.settings import EmbedSettings


async def _embedding_serving(request: Request) -> EmbeddingServing:
    return request.app.state.embedding_serving


async def _rerank_serving(request: Request) -> RerankServing:
    return request.app.state.rerank_serving


async def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def _settings(request: Request) -> EmbedSettings:
    return request.app.state.settings


async def _registry_client(request: Request) -> RegistryClient:
    return request.app.state.registry_client


EmbeddingServingDep = Annotated[EmbeddingServing, Depends(_embedding_serving)]
RerankServingDep = Annotated[RerankServing, Depends(_rerank_serving)]
RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
SettingsDep = Annotated[EmbedSettings, Depends(_settings)]
RegistryClientDep = Annotated[RegistryClient, Depends(_registry_client)]
