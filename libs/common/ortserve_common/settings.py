"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

import socket

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 in containers.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    log_level: str = Field(
        "INFO", pattern=r"^(?i)(DEBUG|INFO|WARNING|ERROR|CRITICAL)$", description="Python log level."
    )
    max_concurrency: int = Field(4, ge=1, description="Requests running at once; further ones queue.")
    max_queue: int = Field(32, ge=0, description="Requests allowed to wait for a slot; beyond this → 429.")
    queue_timeout_s: float = Field(30.0, gt=0, description="Longest wait for a slot before the request gets 503.")
    drain_timeout_s: float = Field(
        30.0,
        gt=0,
        description="On SIGTERM, how long the requests in flight (running and queued) may take to finish before the "
        "process exits; a process manager should wait a little longer than this before it kills.",
    )


class ModelHostSettings(ServiceSettings):
    """What chat and embeddings share: they host models, load and unload them at runtime (the admin API), and
    register them with the model registry."""

    admin_key: str | None = Field(
        None,
        description="Bearer key for this service's admin API (/admin/models/load and /unload; chat's "
        "/v1/prompt-templates too); unset disables it (403).",
    )
    registry_url: str | None = Field(
        None, description="Model registry base URL to register with and heartbeat to; unset runs standalone."
    )
    advertise_url: str | None = Field(
        None, description="URL the registry and proxy use to reach this instance; defaults to http://host:port."
    )

    limits_store_url: str | None = Field(
        None,
        description="Redis URL of the per-key limits counters that every replica shares (redis://host:6379/0); "
        "unset, keys with counted limits are served per limits_fail_open.",
    )
    limits_fail_open: bool = Field(
        True,
        description="When the limits store is down or unset: true serves limited keys uncounted (logged, "
        "ortserve_key_limits_store_errors_total), false refuses them with 503 limits_unavailable.",
    )
    limits_store_timeout_s: float = Field(
        0.5, gt=0, description="Longest wait for the limits store per call before it counts as down."
    )
    limits_metric_keys: int = Field(
        100, ge=0, description="Key ids with their own series in the per-key metrics; later keys share 'other'."
    )
    node: str | None = Field(
        None,
        description="Name of the host or Swarm node this instance runs on, sent to the registry and listed per "
        "replica by /v1/models (replica_nodes); unset: the instance reports none.",
    )

    def public_url(self) -> str:
        return self.advertise_url or advertised_url(self.host, self.port)


def advertised_url(host: str, port: int) -> str:
    """How peers reach this instance: a wildcard bind is replaced by this host's own address (one per replica)."""
    if host in ("0.0.0.0", "::", ""):
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
    return f"http://{host}:{port}"
