"""HTTP routes: thin wrappers that hand wire models to the serving layer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from ortserve_common.protocol.embeddings import (
    EmbeddingModelCard,
    EmbeddingModelList,
    EmbeddingRequest,
    EmbeddingResponse,
)
from ortserve_common.protocol.rerank import RerankRequest, RerankResponse

from embeddings_service.dependencies import EmbeddingServingDep, ModelTableDep, RerankServingDep

router = APIRouter()


def _json(model: EmbeddingResponse | RerankResponse, exclude_none: bool = False) -> Response:
    # Serialised by pydantic's Rust core in one go: thousands of vectors would be slow through a Python dict.
    return Response(model.model_dump_json(exclude_none=exclude_none), media_type="application/json")


@router.post("/v1/embeddings", response_model=EmbeddingResponse)
async def embeddings(request: EmbeddingRequest, serving: EmbeddingServingDep) -> Response:
    return _json(await serving.create(request))


@router.post("/v1/rerank", response_model=RerankResponse)
@router.post("/rerank", response_model=RerankResponse, include_in_schema=False)
async def rerank(request: RerankRequest, serving: RerankServingDep) -> Response:
    # exclude_none: `document` is left out, not null, when return_documents is false (as Cohere and Jina do).
    return _json(await serving.create(request), exclude_none=True)


@router.get("/v1/models", response_model=EmbeddingModelList)
async def list_models(models: ModelTableDep) -> Response:
    return Response(EmbeddingModelList(data=models.cards()).model_dump_json(), media_type="application/json")


@router.get("/v1/models/{model_id:path}", response_model=EmbeddingModelCard)
async def get_model(model_id: str, models: ModelTableDep) -> Response:
    return Response(models.get(model_id).card().model_dump_json(), media_type="application/json")
