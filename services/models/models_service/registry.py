"""Which instances are alive and what they serve; the manifest supplies each model's metadata."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ortserve_common.errors import model_not_found
from ortserve_common.model_manifest import Manifest, ManifestEntry
from ortserve_common.protocol.registry import (
    InstanceRegistration,
    InstanceView,
    ModelStatus,
    RegisteredModel,
    RegistryModelCard,
    ServiceName,
)

logger = logging.getLogger(__name__)


@dataclass
class Instance:
    url: str
    service: ServiceName
    models: list[RegisteredModel]
    ttl_s: float
    last_heartbeat: float  # on the registry's monotonic clock
    node: str | None = None

    def is_live(self, now: float) -> bool:
        return now - self.last_heartbeat <= self.ttl_s

    def serves(self, model_id: str) -> bool:
        return any(model.id == model_id for model in self.models)


class ModelRegistry:
    """In-memory on purpose: instances re-register within one heartbeat, so a restarted registry is whole again."""

    def __init__(
        self, manifest: Manifest, forget_after_s: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.manifest = manifest
        self._forget_after_s = forget_after_s
        self._clock = clock
        self._instances: dict[str, Instance] = {}
        # Registered-only models have no manifest `created`; the first sighting keeps it stable across heartbeats.
        self._first_seen: dict[str, int] = {}

    # --- writes (from instances and from load/unload results) ---

    def register(self, registration: InstanceRegistration) -> None:
        models = self._canonical_models(registration.models)
        known = self._instances.get(registration.url)
        if known is None or not known.is_live(self._clock()):
            logger.info(
                "instance %s (%s) is up with %s", registration.url, registration.service, [m.id for m in models]
            )
        elif [m.id for m in known.models] != [m.id for m in models]:
            logger.info("instance %s now serves %s", registration.url, [m.id for m in models])
        self._instances[registration.url] = Instance(
            registration.url, registration.service, models, registration.ttl_s, self._clock(), registration.node
        )

    def deregister(self, url: str) -> bool:
        removed = self._instances.pop(url, None)
        if removed is not None:
            logger.info("instance %s (%s) deregistered", url, removed.service)
        return removed is not None

    def update_models(self, url: str, models: list[RegisteredModel]) -> None:
        """Take an instance's own word after a load or unload, ahead of its next heartbeat."""
        instance = self._instances.get(url)
        if instance is not None:
            instance.models = self._canonical_models(models)

    # --- reads ---

    def canonical_id(self, name: str) -> str:
        entry = self.manifest.entry(name)
        return entry.id if entry is not None else name

    def manifest_entry(self, name: str) -> ManifestEntry | None:
        return self.manifest.entry(name)

    def live_instances(self, service: ServiceName | None = None) -> list[Instance]:
        now = self._clock()
        return [i for i in self._instances.values() if i.is_live(now) and (service is None or i.service == service)]

    def instances_serving(self, model_id: str) -> list[Instance]:
        model_id = self.canonical_id(model_id)
        return [instance for instance in self.live_instances() if instance.serves(model_id)]

    def live_cards(self) -> list[RegistryModelCard]:
        return [
            RegistryModelCard(**status.model_dump(include=set(RegistryModelCard.model_fields)))
            for status in self.statuses()
            if status.status == "live"
        ]

    def live_card(self, name: str) -> RegistryModelCard:
        model_id = self.canonical_id(name)
        for card in self.live_cards():
            if card.id == model_id:
                return card
        raise model_not_found(name)

    def statuses(self) -> list[ModelStatus]:
        """Manifest models in manifest order, then registered-only models by id; each live or down."""
        self._forget_long_dead()
        now = self._clock()
        registered: dict[str, list[tuple[Instance, RegisteredModel]]] = {}
        for instance in self._instances.values():
            for model in instance.models:
                registered.setdefault(model.id, []).append((instance, model))
        ids = [entry.id for entry in self.manifest.models]
        ids += sorted(model_id for model_id in registered if self.manifest.entry(model_id) is None)
        return [self._status(model_id, registered.get(model_id, []), now) for model_id in ids]

    def instance_views(self) -> list[InstanceView]:
        self._forget_long_dead()
        now = self._clock()
        return [
            InstanceView(
                url=instance.url,
                service=instance.service,
                node=instance.node,
                live=instance.is_live(now),
                ttl_s=instance.ttl_s,
                last_heartbeat_age_s=round(now - instance.last_heartbeat, 3),
                models=instance.models,
            )
            for instance in sorted(self._instances.values(), key=lambda i: i.url)
        ]

    # --- internals ---

    def _status(self, model_id: str, served_by: list[tuple[Instance, RegisteredModel]], now: float) -> ModelStatus:
        live = [(instance, model) for instance, model in served_by if instance.is_live(now)]
        entry = self.manifest.entry(model_id)
        if entry is not None:
            # The embeddings service also serves a chat model's id (its hidden states): the card describes the
            # model as its manifest kind, so only the entry's own service makes it live and counts as a replica.
            live = [(instance, model) for instance, model in live if instance.service == entry.service]
            registered_context = next((m.context_length for _, m in live if m.context_length), None)
            engine = next((m.engine for _, m in live if m.engine), None)
            # Said by the instances that serve it (OCR is a setting of theirs), not by the manifest.
            capabilities = next((m.capabilities for _, m in live if m.capabilities is not None), None)
            return ModelStatus(
                id=entry.id,
                created=entry.created,
                owned_by=entry.owned_by,
                kind=entry.kind,
                status="live" if live else "down",
                context_length=entry.context_length or registered_context,
                service=entry.service,
                aliases=entry.aliases,
                defaults=entry.defaults_dict(),
                engine=engine,
                capabilities=capabilities,
                in_manifest=True,
                instances=[instance.url for instance, _ in live],
                replicas=len(live),
                replica_nodes=_nodes(live),
            )
        instance, model = (live or served_by)[0]
        return ModelStatus(
            id=model_id,
            created=self._first_seen.setdefault(model_id, int(time.time())),
            kind=model.kind,
            status="live" if live else "down",
            context_length=model.context_length,
            service=instance.service,
            engine=model.engine,
            capabilities=model.capabilities,
            in_manifest=False,
            instances=[instance.url for instance, _ in live],
            replicas=len(live),
            replica_nodes=_nodes(live),
        )

    def _canonical_models(self, models: list[RegisteredModel]) -> list[RegisteredModel]:
        """An instance that registers an alias serves the manifest model it names; count it under the real id."""
        result: dict[str, RegisteredModel] = {}
        for model in models:
            model_id = self.canonical_id(model.id)
            result.setdefault(model_id, model.model_copy(update={"id": model_id}))
            self._first_seen.setdefault(model_id, int(time.time()))
        return list(result.values())

    def _forget_long_dead(self) -> None:
        now = self._clock()
        for url, instance in list(self._instances.items()):
            if now - instance.last_heartbeat > instance.ttl_s + self._forget_after_s:
                logger.info("forgetting instance %s, down for over %.0fs", url, self._forget_after_s)
                del self._instances[url]


def _nodes(live: list[tuple[Instance, RegisteredModel]]) -> list[str]:
    return sorted(instance.node for instance, _ in live if instance.node)
