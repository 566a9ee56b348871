"""/admin/models/load and /unload: runtime multi-model hosting, behind the admin key."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from ortserve_common.errors import invalid_request
from ortserve_common.protocol.admin import LoadedModels, ModelLoadRequest, ModelUnloadRequest

from chat_service.dependencies import ModelPoolDep, RegistryDep, require_admin

admin_router = APIRouter(prefix="/admin/models", dependencies=[Depends(require_admin)], tags=["admin"])


@admin_router.post("/load", response_model=LoadedModels)
async def load_model(body: ModelLoadRequest, pool: ModelPoolDep, registry: RegistryDep) -> LoadedModels:
    if body.kind not in (None, "chat"):
        raise invalid_request(f"This chat service hosts chat models, not {body.kind!r}.", "kind")
    await pool.load(body.id, Path(body.path))
    await registry.heartbeat()  # announce it now rather than at the next beat
    return LoadedModels(models=pool.registrations())


@admin_router.post("/unload", response_model=LoadedModels)
async def unload_model(body: ModelUnloadRequest, pool: ModelPoolDep, registry: RegistryDep) -> LoadedModels:
    engine = await pool.remove(body.id)
    await registry.heartbeat()  # the registry stops routing the model here before its streams are waited for
    await pool.retire(body.id, engine)
    return LoadedModels(models=pool.registrations())
