"""Public routes: the OpenAI model list, with only the models that some live instance serves right now."""

from __future__ import annotations

from fastapi import APIRouter
from ortserve_common.protocol.registry import RegistryModelCard, RegistryModelList

from models_service.dependencies import RegistryDep

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=RegistryModelList)
async def list_models(registry: RegistryDep) -> RegistryModelList:
    return RegistryModelList(data=registry.live_cards())


@router.get("/v1/models/{model_id:path}", response_model=RegistryModelCard)
async def get_model(model_id: str, registry: RegistryDep) -> RegistryModelCard:
    return registry.live_card(model_id)
