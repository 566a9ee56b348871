"""RegistrationClient (ortserve_common.registration) against the real registry process."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from models_testing import ModelsServer, free_port
from ortserve_common.registration import RegistrationClient
from ortserve_testing.waiting import DEADLINE_S, eventually

SMOLLM = {"id": "smollm2-135m-instruct", "kind": "chat", "context_length": 8192}


async def _live_ids(server: ModelsServer) -> list[str]:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        return [card["id"] for card in (await http.get("/v1/models")).json()["data"]]


async def _instance_urls(server: ModelsServer) -> list[str]:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        return [i["url"] for i in (await http.get("/internal/instances")).json()["data"]]


async def test_registers_heartbeats_and_deregisters(
    fresh_registry: ModelsServer, caplog: pytest.LogCaptureFixture
) -> None:
    served = [SMOLLM]
    advertise = f"http://127.0.0.1:{free_port()}"
    client = RegistrationClient(fresh_registry.base_url, "chat", advertise, lambda: served, interval_s=0.2, ttl_s=1.0)
    beats = 0  # heartbeats the registry accepted
    beat = client.heartbeat

    async def counted() -> bool:
        nonlocal beats
        accepted = await beat()
        beats += accepted
        return accepted

    client.heartbeat = counted  # type: ignore[method-assign]
    caplog.set_level(logging.INFO)
    await client.start()
    try:
        assert client.registered
        assert await _live_ids(fresh_registry) == ["smollm2-135m-instruct"]
        # The heartbeat carries the current list: a model loaded later shows up at the next beat.
        served = [SMOLLM, {"id": "phi-3.5-mini", "kind": "chat", "context_length": 4096}]

        async def both_listed() -> bool:
            return await _live_ids(fresh_registry) == ["smollm2-135m-instruct", "phi-3.5-mini"]

        await eventually(both_listed, "the model loaded later listed")
        # Heartbeats keep it alive past its ttl: after more beats than fit in one ttl (each comes interval_s or more
        # after the last), the registry still lists it.
        since = beats
        await eventually(lambda: beats > since + client.ttl_s / client.interval_s, "heartbeats past the ttl")
        assert "phi-3.5-mini" in await _live_ids(fresh_registry)
        # httpx's own INFO line per request is dropped for heartbeats; other requests keep theirs.
        httpx_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
        assert httpx_lines and not any("/internal/instances" in line for line in httpx_lines)
    finally:
        await client.stop()
    assert await _instance_urls(fresh_registry) == []
    assert not client.registered


@pytest.mark.model  # starts a service process of its own
async def test_registry_down_at_start_is_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    client = RegistrationClient(
        f"http://127.0.0.1:{port}", "embeddings", "http://127.0.0.1:1", lambda: [], interval_s=0.2, ttl_s=1.0
    )
    with caplog.at_level(logging.DEBUG, logger="ortserve_common.registration"):
        await client.start()  # must not raise

        def failures() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "failed (retrying)" in r.getMessage()]

        await eventually(lambda: len(failures()) >= 3, "three failed registrations (at start, then each interval_s)")
    assert not client.registered
    warnings = [r for r in failures() if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # repeats go to DEBUG, so an outage does not flood the log
    server = await asyncio.to_thread(ModelsServer(tmp_path, port=port).start)
    try:

        async def registered() -> bool:
            return await _instance_urls(server) == ["http://127.0.0.1:1"]

        await eventually(registered, "registered once the registry is up")
        assert client.registered
    finally:
        await client.stop()
        await asyncio.to_thread(server.stop)


async def test_a_refused_registration_is_logged_not_raised(
    fresh_registry: ModelsServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = RegistrationClient(
        fresh_registry.base_url, "chat", "http://127.0.0.1:1", lambda: [{"id": "x", "kind": "llm"}], 0.2, 1.0
    )
    with caplog.at_level(logging.WARNING, logger="ortserve_common.registration"):
        await client.start()
        await client.stop()
    assert not client.registered
    assert any("failed (retrying)" in r.getMessage() for r in caplog.records)


async def test_stop_is_quick_when_the_registry_is_gone() -> None:
    # The next beat is half an hour away: a stop that waited for it, rather than cancelling it, outlasts the deadline.
    client = RegistrationClient(
        f"http://127.0.0.1:{free_port()}", "chat", "http://127.0.0.1:1", lambda: [], interval_s=1800, ttl_s=3600
    )
    await client.start()
    stopping = asyncio.create_task(client.stop())
    done, _ = await asyncio.wait({stopping}, timeout=DEADLINE_S)  # asyncio.wait never cancels what it waits for
    stopping.cancel()  # nothing left to do where it is done
    assert done, "stop() waited for the next beat instead of cancelling it"
    assert not client.registered


async def test_without_a_registry_url_it_does_nothing() -> None:
    client = RegistrationClient(None, "chat", "http://127.0.0.1:1", lambda: [SMOLLM])
    await client.start()
    assert await client.heartbeat() is False
    await client.stop()
    assert not client.registered


def test_ttl_must_exceed_the_interval() -> None:
    with pytest.raises(ValueError, match="interval_s < ttl_s"):
        RegistrationClient("http://127.0.0.1:1", "chat", "http://127.0.0.1:2", list, interval_s=2, ttl_s=2)
