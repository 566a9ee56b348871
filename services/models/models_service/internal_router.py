"""Routes for the stack itself (nginx never routes /internal): registration, key checks, operator views."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from ortserve_common.errors import OpenAIError, invalid_request
from ortserve_common.logs import record_request_fields
from ortserve_common.protocol.registry import (
    InstanceRegistration,
    InstanceViewList,
    ModelStatusList,
    RegistrationStatus,
    normalize_instance_url,
)

from models_service.auth import authenticate, key_check_headers
from models_service.dependencies import BearerTokenDep, KeyStoreDep, RegistryDep

router = APIRouter(prefix="/internal", tags=["internal"])

# nginx's auth_request may reuse the client's method for its subrequest; the answer must not depend on it.
_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@router.post("/instances", response_model=RegistrationStatus)
async def register_instance(registration: InstanceRegistration, registry: RegistryDep) -> RegistrationStatus:
    registry.register(registration)
    return RegistrationStatus(status="registered")


@router.delete("/instances", response_model=RegistrationStatus)
async def deregister_instance(registry: RegistryDep, url: str = Query(min_length=1)) -> RegistrationStatus:
    try:
        url = normalize_instance_url(url)
    except ValueError as exc:
        raise invalid_request(f"Invalid value for 'url': {exc}", "url") from None
    if not registry.deregister(url):
        raise OpenAIError(404, f"No instance is registered at {url}.", "invalid_request_error", "url", "not_found")
    return RegistrationStatus(status="deregistered")


@router.get("/instances", response_model=InstanceViewList)
async def list_instances(registry: RegistryDep) -> InstanceViewList:
    return InstanceViewList(data=registry.instance_views())


@router.get("/models", response_model=ModelStatusList)
async def list_model_statuses(registry: RegistryDep) -> ModelStatusList:
    return ModelStatusList(data=registry.statuses())


@router.api_route("/auth", methods=_ANY_METHOD, status_code=204, response_class=Response)
async def check_api_key(token: BearerTokenDep, key_store: KeyStoreDep, registry: RegistryDep) -> Response:
    record = authenticate(token, key_store)
    record_request_fields(api_key_id=record.id)
    # nginx passes these on to the services (auth_request_set): the key's id (per-key state such as conversations),
    # its priority (the chat scheduler) and its limits (counted by the services, since this answer is cached).
    return Response(status_code=204, headers=key_check_headers(record, registry.manifest))
