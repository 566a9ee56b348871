"""A real Redis server for the per-key limits tests (skipped, saying why, where none can be started)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ortserve_testing.redis_server import TemporaryRedis


@pytest.fixture
def redis_server() -> Iterator[TemporaryRedis]:
    server = TemporaryRedis()
    if server.url is None:
        pytest.skip(server.reason)
    server.start()
    yield server
    server.cleanup()
