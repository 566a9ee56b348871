"""FastAPI dependencies: the state the lifespan put on app.state, and the bearer-key checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from ortserve_common.admin_auth import bearer_token
from ortserve_common.limits.store import LimitsStore

from models_service.auth import require_admin_key
from models_service.keys import KeyStore
from models_service.load_forwarding import LoadForwarder
from models_service.registry import ModelRegistry
from models_service.settings import ModelsSettings


def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def _key_store(request: Request) -> KeyStore:
    return request.app.state.key_store


def _limits_store(request: Request) -> LimitsStore:
    return request.app.state.limits_store


def _load_forwarder(request: Request) -> LoadForwarder:
    return request.app.state.load_forwarder


def _settings(request: Request) -> ModelsSettings:
    return request.app.state.settings


def _bearer(authorization: Annotated[str | None, Header()] = None) -> str | None:
    return bearer_token(authorization)


RegistryDep = Annotated[ModelRegistry, Depends(_registry)]
KeyStoreDep = Annotated[KeyStore, Depends(_key_store)]
LimitsStoreDep = Annotated[LimitsStore, Depends(_limits_store)]
LoadForwarderDep = Annotated[LoadForwarder, Depends(_load_forwarder)]
SettingsDep = Annotated[ModelsSettings, Depends(_settings)]
BearerTokenDep = Annotated[str | None, Depends(_bearer)]


def require_admin(token: BearerTokenDep, settings: SettingsDep, key_store: KeyStoreDep) -> None:
    require_admin_key(token, settings.admin_key, key_store)
