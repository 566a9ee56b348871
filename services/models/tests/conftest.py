"""Fixtures: one shared registry process for tests that only add uniquely named state, fresh ones where a test
needs the registry to itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from models_testing import SEEDED_KEY, ModelsServer


@pytest.fixture(scope="session")
def shared_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelsServer]:
    server = ModelsServer(tmp_path_factory.mktemp("shared-registry"), MODELS_API_KEYS=SEEDED_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[ModelsServer]:
    server = ModelsServer(tmp_path, MODELS_API_KEYS=SEEDED_KEY).start()
    yield server
    server.stop()
