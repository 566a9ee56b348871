"""Admin routes, behind MODELS_ADMIN_KEY: API keys, and loading or unloading models on the live instances."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from ortserve_common.errors import OpenAIError
from ortserve_common.limits.store import StoreUnavailable
from ortserve_common.logs import record_request_fields
from ortserve_common.protocol.keys import (
    CreatedKey,
    CreateKeyRequest,
    KeyInfo,
    KeyList,
    KeyUsage,
    RevokedKey,
    UpdateKeyRequest,
    WindowUsage,
)
from ortserve_common.protocol.registry import LoadModelRequest, ModelActionResult, UnloadModelRequest

from models_service.dependencies import KeyStoreDep, LimitsStoreDep, LoadForwarderDep, require_admin
from models_service.keys import ApiKeyRecord

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post("/keys", status_code=201, response_model=CreatedKey)
async def create_key(request: CreateKeyRequest, key_store: KeyStoreDep) -> CreatedKey:
    record, secret = key_store.create(request.name, request.limits)
    record_request_fields(api_key_id=record.id)
    return CreatedKey(id=record.id, name=record.name, key=secret, created=record.created, limits=record.limits)


@router.get("/keys", response_model=KeyList)
async def list_keys(key_store: KeyStoreDep) -> KeyList:
    return KeyList(data=[_info(r) for r in key_store.records()])


@router.patch("/keys/{key_id}", response_model=KeyInfo)
async def update_key(key_id: str, request: UpdateKeyRequest, key_store: KeyStoreDep) -> KeyInfo:
    """The proxy caches key checks (PROXY_AUTH_CACHE_TTL, 5 s): new limits apply within that time."""
    changes = {field: getattr(request, field) for field in request.model_fields_set}
    record = key_store.update(key_id, changes)
    if record is None:
        raise _no_such_key(key_id)
    record_request_fields(api_key_id=record.id)
    return _info(record)


@router.get("/keys/{key_id}/usage", response_model=KeyUsage)
async def key_usage(key_id: str, key_store: KeyStoreDep, limits_store: LimitsStoreDep) -> KeyUsage:
    record = key_store.find(key_id)
    if record is None:
        raise _no_such_key(key_id)
    record_request_fields(api_key_id=record.id)
    try:
        usage = await limits_store.usage(key_id)
    except StoreUnavailable as exc:
        raise OpenAIError(
            503,
            f"The per-key limits store is unavailable ({exc}); retry shortly.",
            "server_error",
            None,
            "limits_unavailable",
            {"Retry-After": "5"},
        ) from None
    return KeyUsage(
        id=record.id,
        limits=record.limits,
        minute=WindowUsage(
            requests=usage.requests_this_minute, tokens=usage.tokens_this_minute, resets_in_s=usage.minute_reset_s
        ),
        day=WindowUsage(requests=usage.requests_today, tokens=usage.tokens_today, resets_in_s=usage.day_reset_s),
        in_flight=usage.in_flight,
        refusals=usage.refusals,
    )


@router.delete("/keys/{key_id}", response_model=RevokedKey)
async def revoke_key(key_id: str, key_store: KeyStoreDep) -> RevokedKey:
    record = key_store.revoke(key_id)
    if record is None:
        raise _no_such_key(key_id)
    record_request_fields(api_key_id=record.id)
    return RevokedKey(id=record.id)


@router.post("/models/load", response_model=ModelActionResult)
async def load_model(request: LoadModelRequest, forwarder: LoadForwarderDep) -> ModelActionResult:
    record_request_fields(model=request.id)
    return await forwarder.load(request)


@router.post("/models/unload", response_model=ModelActionResult)
async def unload_model(request: UnloadModelRequest, forwarder: LoadForwarderDep) -> ModelActionResult:
    record_request_fields(model=request.id)
    return await forwarder.unload(request)


def _info(record: ApiKeyRecord) -> KeyInfo:
    return KeyInfo(
        id=record.id,
        name=record.name,
        created=record.created,
        revoked=record.revoked,
        prefix=record.prefix,
        limits=record.limits,
    )


def _no_such_key(key_id: str) -> OpenAIError:
    return OpenAIError(404, f"No API key with id '{key_id}'.", "invalid_request_error", "id", "not_found")
