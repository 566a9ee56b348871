"""Fixtures: one whole stack for the end-to-end tests (registry, chat, embeddings, nginx), torn down at the end."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from compose_testing import ROOT, ComposeStack
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


@pytest.fixture(scope="session")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    """The stack under docker compose with chat and embeddings scaled to 2, shared by the compose tests (which leave
    it serving); its containers, network and volumes are removed at the end."""
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("no Docker engine answers: `make docker-engine` installs and starts one (make test does)")
    # Up to date images: seconds from the engine's cache (make test has built them already).
    subprocess.run([str(ROOT / "tools/docker/images.sh")], check=True, capture_output=True, timeout=900)
    stack = ComposeStack(tmp_path_factory.mktemp("compose"), {"chat": 2, "embeddings": 2})
    try:
        yield stack.up()
    finally:
        stack.down(volumes=True)
