"""Per-key Prometheus series with a bounded label set: the first `max_keys` key ids seen get their own series, later
ones share the label "other", so a deployment with thousands of keys cannot blow up Prometheus. Key ids only: the
secret never reaches this module."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter

OTHER_KEYS = "other"


class KeyMetrics:
    def __init__(self, registry: CollectorRegistry, max_keys: int = 100) -> None:
        self.registry = registry
        self.max_keys = max_keys
        self._labelled: set[str] = set()
        self._lock = threading.Lock()
        self.refusals = Counter(
            "ortserve_key_refusals",
            "Requests refused by a per-key limit, by key id (or 'other' past the label bound) and reason: requests, "
            "tokens, concurrency, quota, model, store_unavailable.",
            ["key_id", "reason"],
            registry=registry,
        )
        self.tokens = Counter(
            "ortserve_key_tokens",
            "Tokens used, by key id (or 'other' past the label bound) and kind (prompt, completion).",
            ["key_id", "kind"],
            registry=registry,
        )
        self.store_errors = Counter(
            "ortserve_key_limits_store_errors",
            "Calls to the per-key counter store that failed (down, unreachable, too slow, or none configured).",
            registry=registry,
        )

    def label(self, key_id: str) -> str:
        with self._lock:
            if key_id in self._labelled:
                return key_id
            if len(self._labelled) < self.max_keys:
                self._labelled.add(key_id)
                return key_id
        return OTHER_KEYS

    def refused(self, key_id: str, reason: str) -> None:
        self.refusals.labels(self.label(key_id), reason).inc()

    def used(self, key_id: str, kind: str, tokens: int) -> None:
        if tokens > 0:
            self.tokens.labels(self.label(key_id), kind).inc(tokens)
