"""Admin routes, behind MODELS_ADMIN_KEY: API keys, and loading or unloading models on the live instances."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from ortserve_common.errors import OpenAIError
from ortserve_common.logs import record_request_fields
from ortserve_common.protocol.keys import CreatedKey, CreateKeyRequest, KeyInfo, KeyList, RevokedKey
from ortserve_common.protocol.registry import LoadModelRequest, ModelActionResult, UnloadModelRequest

from models_service.dependencies import KeyStoreDep, LoadForwarderDep, require_admin

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post("/keys", status_code=201, response_model=CreatedKey)
async def create_key(request: CreateKeyRequest, key_store: KeyStoreDep) -> CreatedKey:
    record, secret = key_store.create(request.name)
    record_request_fields(api_key_id=record.id)
    return CreatedKey(id=record.id, name=record.name, key=secret, created=record.created)


@router.get("/keys", response_model=KeyList)
async def list_keys(key_store: KeyStoreDep) -> KeyList:
    return KeyList(
        data=[
            KeyInfo(id=r.id, name=r.name, created=r.created, revoked=r.revoked, prefix=r.prefix)
            for r in key_store.records()
        ]
    )


@router.delete("/keys/{key_id}", response_model=RevokedKey)
async def revoke_key(key_id: str, key_store: KeyStoreDep) -> RevokedKey:
    record = key_store.revoke(key_id)
    if record is None:
        raise OpenAIError(404, f"No API key with id '{key_id}'.", "invalid_request_error", "id", "not_found")
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
