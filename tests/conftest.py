"""Fixtures: one whole stack for the end-to-end tests (registry, chat, embeddings, nginx), torn down at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from reliability_testing import RELIABILITY_ENV
from stack_testing import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("stack")).up()
    yield stack
    stack.down()


@pytest.fixture(scope="session")
def reliability_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second stack for the tests that kill, stop or overload services, with a small chat capacity and short client
    timeouts (RELIABILITY_ENV); they leave it serving, but never disturb the shared `stack`."""
    stack = Stack(tmp_path_factory.mktemp("reliability"), extra_env=RELIABILITY_ENV).up()
    yield stack
    stack.down()
