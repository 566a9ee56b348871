"""Fixtures: one whole stack for the end-to-end tests (registry, chat, embeddings, nginx), torn down at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stack_testing import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("stack")).up()
    yield stack
    stack.down()
