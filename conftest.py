"""Every test gets one of three markers, so that `make test-unit` can run the fast ones alone:

- stack: the whole local stack (registry, chat, embeddings, nginx) through the proxy;
- model: a real model or a service process of its own;
- unit: neither (in-process, fakes at most); `pytest -m unit` runs in well under a minute.

A test is marked from the fixtures it uses; a module that starts servers by itself says so with `pytestmark`.
"""

from __future__ import annotations

import pytest

STACK_FIXTURES = {"stack", "reliability_stack", "soak_stack"}
MODEL_FIXTURES = {
    "smollm_path",  # chat: the real SmolLM2 (and every fixture built on it: chat_server, client, plain)
    "postgres_url",  # a real PostgreSQL server
    "redis_server",  # a real Redis server (the per-key limits counters)
    "real_models",  # embeddings: the real encoders (server, client, minilm_tokenizer build on it)
    "shared_registry",  # models: the registry as a process
    "fresh_registry",
    "phi3_path",  # chat: the tiny Phi-3 build
}
KINDS = ("unit", "model", "stack")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(kind) for kind in KINDS):
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & STACK_FIXTURES:
            item.add_marker(pytest.mark.stack)
        elif fixtures & MODEL_FIXTURES:
            item.add_marker(pytest.mark.model)
        else:
            item.add_marker(pytest.mark.unit)
