"""Runtime load and unload: forward the admin's request to the instances concerned, then update the registry."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from ortserve_common.errors import OpenAIError, model_not_found
from ortserve_common.protocol.registry import (
    InstanceOutcome,
    LoadModelRequest,
    ModelActionResult,
    ModelKind,
    RegisteredModel,
    ServiceName,
    UnloadModelRequest,
)
from pydantic import ValidationError

from models_service.registry import Instance, ModelRegistry

logger = logging.getLogger(__name__)

LOAD_PATH = "/admin/models/load"
UNLOAD_PATH = "/admin/models/unload"


class LoadForwarder:
    def __init__(self, registry: ModelRegistry, client: httpx.AsyncClient, admin_key: str | None) -> None:
        self._registry = registry
        self._client = client
        self._admin_key = admin_key

    async def load(self, request: LoadModelRequest) -> ModelActionResult:
        """Every live instance of the service loads the model, so that any of them can take its requests."""
        entry = self._registry.manifest_entry(request.id)
        model_id = entry.id if entry is not None else request.id
        service: ServiceName = request.service or (entry.service if entry and entry.service else "chat")
        kind: ModelKind | None = request.kind or (entry.kind if entry is not None else None)
        targets = self._registry.live_instances(service)
        if not targets:
            raise OpenAIError(
                409,
                f"No live {service} instance to load '{model_id}' on; start one and let it register first.",
                "invalid_request_error",
                "service",
                "no_live_instance",
            )
        payload = {"id": model_id, "path": request.path, "kind": kind}
        outcomes = await self._post_all(targets, LOAD_PATH, payload)
        for outcome in outcomes:
            if _accepted(outcome):
                fallback = [*_models_of(targets, outcome.url), *_loaded(model_id, kind, outcome.url, targets)]
                self._registry.update_models(outcome.url, _reported_models(outcome.body) or fallback)
        return self._result(model_id, "load", outcomes)

    async def unload(self, request: UnloadModelRequest) -> ModelActionResult:
        model_id = self._registry.canonical_id(request.id)
        targets = self._registry.instances_serving(model_id)
        if not targets:
            raise model_not_found(request.id)
        outcomes = await self._post_all(targets, UNLOAD_PATH, {"id": model_id})
        for outcome in outcomes:
            if _accepted(outcome):
                remaining = [m for m in _models_of(targets, outcome.url) if m.id != model_id]
                reported = _reported_models(outcome.body)
                self._registry.update_models(outcome.url, remaining if reported is None else reported)
        return self._result(model_id, "unload", outcomes)

    async def _post_all(self, targets: list[Instance], path: str, payload: dict[str, Any]) -> list[InstanceOutcome]:
        headers = {"Authorization": f"Bearer {self._admin_key}"} if self._admin_key else {}
        return list(await asyncio.gather(*(self._post(t.url, path, payload, headers) for t in targets)))

    async def _post(self, url: str, path: str, payload: dict[str, Any], headers: dict[str, str]) -> InstanceOutcome:
        try:
            response = await self._client.post(url + path, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            logger.warning("%s %s on %s failed: %r", path, payload["id"], url, exc)
            return InstanceOutcome(url=url, status_code=None, body={"error": {"message": f"unreachable: {exc!r}"}})
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:2000]
        logger.info("%s %s on %s answered %d", path, payload["id"], url, response.status_code)
        return InstanceOutcome(url=url, status_code=response.status_code, body=body)

    def _result(self, model_id: str, action: str, outcomes: list[InstanceOutcome]) -> ModelActionResult:
        if not any(_accepted(outcome) for outcome in outcomes):
            reasons = "; ".join(f"{o.url}: {o.status_code or 'unreachable'} {_message(o.body)}" for o in outcomes)
            message = f"No instance accepted the {action} of '{model_id}': {reasons}"
            raise OpenAIError(502, message, "server_error", None, "upstream_error")
        return ModelActionResult(id=model_id, instances=outcomes)


def _accepted(outcome: InstanceOutcome) -> bool:
    return outcome.status_code is not None and 200 <= outcome.status_code < 300


def _reported_models(body: Any) -> list[RegisteredModel] | None:
    """The instance's `{"models": [...]}` answer, or None when it sent something else."""
    if not isinstance(body, dict) or not isinstance(body.get("models"), list):
        return None
    try:
        return [RegisteredModel.model_validate(item) for item in body["models"]]
    except ValidationError:
        return None


def _models_of(targets: list[Instance], url: str) -> list[RegisteredModel]:
    return next((list(t.models) for t in targets if t.url == url), [])


def _loaded(model_id: str, kind: ModelKind | None, url: str, targets: list[Instance]) -> list[RegisteredModel]:
    """What to assume an instance serves after it accepted a load without saying what it serves now."""
    if kind is None or any(m.id == model_id for m in _models_of(targets, url)):
        return []
    return [RegisteredModel(id=model_id, kind=kind)]


def _message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))[:300]
    return str(body)[:300]
