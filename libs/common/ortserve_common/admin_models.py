"""/admin/models/load and /unload, which chat and embeddings both serve behind the admin key (the model registry
forwards here). The router is one; what loading and unloading mean is each service's ModelHost, on app.state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Header, Request

from ortserve_common.admin_auth import check_admin_key
from ortserve_common.protocol.admin import LoadedModels, ModelLoadRequest, ModelUnloadRequest
from ortserve_common.registration import RegistrationClient


class ModelHost(Protocol):
    async def load_model(self, request: ModelLoadRequest) -> None:
        """Load and serve one more model (errors are OpenAIErrors naming the field)."""

    async def unload_model(self, model_id: str, announce: Callable[[], Awaitable[object]]) -> None:
        """Stop serving it at once (new requests get 404), `announce` that (the registry stops routing it here),
        then free it once the requests it is running have ended."""

    def registrations(self) -> list[dict[str, Any]]:
        """What the model registry is told this instance serves."""


async def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """The admin key of the app's settings (ModelHostSettings.admin_key)."""
    check_admin_key(authorization, request.app.state.settings.admin_key)


def _host(request: Request) -> ModelHost:
    return request.app.state.model_host


def _registration(request: Request) -> RegistrationClient:
    return request.app.state.registration


ModelHostDep = Annotated[ModelHost, Depends(_host)]
RegistrationDep = Annotated[RegistrationClient, Depends(_registration)]

admin_models_router = APIRouter(prefix="/admin/models", dependencies=[Depends(require_admin)], tags=["admin"])


@admin_models_router.post("/load", response_model=LoadedModels)
async def load_model(body: ModelLoadRequest, host: ModelHostDep, registration: RegistrationDep) -> LoadedModels:
    await host.load_model(body)
    await registration.heartbeat()  # announce it now rather than at the next beat
    return LoadedModels(models=host.registrations())


@admin_models_router.post("/unload", response_model=LoadedModels)
async def unload_model(body: ModelUnloadRequest, host: ModelHostDep, registration: RegistrationDep) -> LoadedModels:
    await host.unload_model(body.id, registration.heartbeat)
    return LoadedModels(models=host.registrations())
