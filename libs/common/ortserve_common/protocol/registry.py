"""Model registry wire models: instance registration, model cards with status, runtime load and unload."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from ortserve_common.protocol.common import ModelCard, OpenAIModel

ServiceName = Literal["chat", "embeddings"]
ModelKind = Literal["chat", "embedding", "rerank"]


def normalize_instance_url(url: str) -> str:
    """One spelling per instance, so that a heartbeat and a DELETE for the same server always match."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL such as http://127.0.0.1:8000")
    return url


class RegisteredModel(OpenAIModel):
    id: str = Field(min_length=1, max_length=256)
    kind: ModelKind
    context_length: int | None = Field(None, ge=1)
    engine: str | None = Field(None, max_length=32, description="The chat engine serving it (batched, generator).")
    capabilities: list[str] | None = Field(None, description="What it takes beyond text, as served: 'ocr' (images).")


class InstanceRegistration(OpenAIModel):
    """`POST /internal/instances`: sent once at start, then repeated as the heartbeat."""

    service: ServiceName
    url: str = Field(description="Base URL at which the registry (not clients) reaches this instance.")
    models: list[RegisteredModel]
    ttl_s: float = Field(6.0, gt=0, le=3600, description="The instance counts as down this long after a heartbeat.")
    node: str | None = Field(
        None, max_length=253, description="The host (or Swarm node) the instance runs on, as its operator names it."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return normalize_instance_url(value)


class RegistrationStatus(BaseModel):
    status: Literal["registered", "deregistered"]


class RegistryModelCard(ModelCard):
    """An OpenAI model object; the extra fields are kept by the OpenAI SDK as attributes it does not declare."""

    kind: ModelKind
    status: Literal["live", "down"] = "live"
    context_length: int | None = None
    service: ServiceName
    aliases: list[str] = Field(default_factory=list)
    defaults: dict[str, Any] = Field(default_factory=dict)
    # A count, not the instances' addresses (those stay internal): how many replicas serve the model right now.
    replicas: int = Field(0, ge=0, description="Live instances serving the model (each replica of a scaled service).")
    # A node name per live replica that reports one (sorted; a name repeats when a node runs several replicas), so a
    # client of a cluster sees where its model runs without learning the replicas' addresses.
    replica_nodes: list[str] = Field(
        default_factory=list, description="The node each live replica runs on, for replicas that report one."
    )


class RegistryModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[RegistryModelCard]


class InstanceView(BaseModel):
    url: str
    service: ServiceName
    node: str | None = None
    live: bool
    ttl_s: float
    last_heartbeat_age_s: float
    models: list[RegisteredModel]


class InstanceViewList(BaseModel):
    object: Literal["list"] = "list"
    data: list[InstanceView]


class ModelStatus(RegistryModelCard):
    """`GET /internal/models`: every known model, live or down, with the instances serving it."""

    in_manifest: bool
    instances: list[str] = Field(default_factory=list, description="URLs of the live instances serving the model.")


class ModelStatusList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelStatus]


class LoadModelRequest(OpenAIModel):
    id: str = Field(min_length=1, max_length=256)
    path: str = Field(min_length=1, description="Model folder, as seen by the instances that will load it.")
    service: ServiceName | None = Field(None, description="Defaults to the manifest entry's service, else chat.")
    kind: ModelKind | None = Field(
        None, description="Defaults to the manifest entry's kind, else the instance's guess."
    )


class UnloadModelRequest(OpenAIModel):
    id: str = Field(min_length=1, max_length=256)


class InstanceOutcome(BaseModel):
    url: str
    status_code: int | None = Field(description="The instance's HTTP status; null when it could not be reached.")
    body: Any = None


class ModelActionResult(BaseModel):
    id: str
    instances: list[InstanceOutcome]
