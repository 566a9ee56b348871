"""/admin/models/load and /unload: runtime model hosting, behind the admin key (the model registry forwards here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header
from ortserve_common.admin_auth import check_admin_key
from ortserve_common.errors import invalid_request
from ortserve_common.protocol.admin import LoadedModels, ModelLoadRequest, ModelUnloadRequest
from pydantic import ValidationError

from embeddings_service.dependencies import RegistryClientDep, RegistryDep, SettingsDep


async def _require_admin(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    check_admin_key(authorization, settings.admin_key)


admin_router = APIRouter(prefix="/admin/models", dependencies=[Depends(_require_admin)], tags=["admin"])


@admin_router.post("/load", response_model=LoadedModels)
async def load_model(
    body: ModelLoadRequest, settings: SettingsDep, models: RegistryDep, registry_client: RegistryClientDep
) -> LoadedModels:
    try:
        entry = settings.entry_for(body.id, body.path, body.kind)
    except ValidationError as exc:
        raise invalid_request(f"Cannot serve this model: {exc.errors()[0]['msg']}", "kind") from exc
    await models.add(entry)
    await registry_client.heartbeat()  # announce it now rather than at the next beat
    return LoadedModels(models=models.registrations())


@admin_router.post("/unload", response_model=LoadedModels)
async def unload_model(
    body: ModelUnloadRequest, models: RegistryDep, registry_client: RegistryClientDep
) -> LoadedModels:
    await models.remove(body.id)
    await registry_client.heartbeat()
    return LoadedModels(models=models.registrations())
