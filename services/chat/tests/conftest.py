"""Fixtures: the chat service as a real uvicorn process on the real models, and the OpenAI SDK pointed at it."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from chat_testing import PHI3_TINY, SMOLLM, ChatServer, PlainGenerator, row_tolerance, several_rows_invariant
from ortserve_testing.postgres import TemporaryPostgres


def _require(path: Path) -> None:
    if not (path / ".complete").exists():
        pytest.fail(f"model {path} is not built; run `make model` (make test does it for you)")


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    _require(SMOLLM)
    return SMOLLM


@pytest.fixture(scope="session")
def phi3_path() -> Path:
    """The tiny random-weight Phi-3 build (longrope, 131072 positions, the Phi-3 chat template)."""
    _require(PHI3_TINY)
    return PHI3_TINY


@pytest.fixture(scope="session")
def chat_server(smollm_path: Path) -> Iterator[ChatServer]:
    server = ChatServer(smollm_path, CHAT_MAX_CONCURRENCY="4").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(chat_server: ChatServer) -> openai.OpenAI:
    return chat_server.client()


@pytest.fixture(scope="session")
def plain(smollm_path: Path) -> PlainGenerator:
    """The plain ONNX Runtime GenAI loop that the service must match token for token (the engine limit), with how far
    this CPU's kernels let a row beside others depart from it (measured here; ortserve_testing.numerics)."""
    plain = PlainGenerator(smollm_path)
    plain.row_tolerance = row_tolerance(smollm_path, plain)
    logging.getLogger(__name__).info("decode rows beside others may move a logit by %.4g here", plain.row_tolerance)
    return plain


@pytest.fixture(scope="session")
def rows_invariant(smollm_path: Path, plain: PlainGenerator) -> bool:
    """Whether this CPU's several-row kernels give a row the same logits in any company (batch-invariant mode's
    premise): measured on AVX-512 VNNI; where it does not hold, the tests of that mode's exactness are skipped."""
    return several_rows_invariant(smollm_path, plain)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL: ORTSERVE_TEST_DATABASE_URL when set, else a throwaway cluster from the machine's server
    binaries (make test installs Debian's postgresql when it can); skipped, with the reason, when neither exists."""
    configured = os.environ.get("ORTSERVE_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    server = TemporaryPostgres().start()
    if server.url is None:
        pytest.skip(f"no PostgreSQL here: {server.reason}")
    try:
        yield server.url
    finally:
        server.stop()
