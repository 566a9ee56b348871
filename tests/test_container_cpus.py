"""The chat image under `docker run --cpus 1` on a host with more cores: with CHAT_ENGINE_THREADS unset the engine
runs one ONNX Runtime thread, from the cgroup quota and not from the host's core count, and the service says so in
its startup log and on /metrics. (What that saves in tok/s is measured by bench/threads_cgroup.py, never here.)"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from compose_testing import ROOT
from ortserve_testing.containers import MODELS_DIR, ChatContainer

# A container of its own on the real SmolLM2.
pytestmark = pytest.mark.model

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def one_cpu_chat() -> Iterator[ChatContainer]:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this host has one CPU: a one-CPU container could not tell the quota from the host's count")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("no Docker engine answers: `make docker-engine` installs and starts one (make test does)")
    # Up to date images: seconds from the engine's cache (make test has built them already).
    subprocess.run([str(ROOT / "tools/docker/images.sh")], check=True, capture_output=True, timeout=900)
    with ChatContainer(MODELS_DIR / MODEL, cpus=1) as chat:
        yield chat


def test_one_cpu_gives_one_engine_thread_in_the_log(one_cpu_chat: ChatContainer) -> None:
    records = one_cpu_chat.log_records()
    startup = next(r for r in records if r["message"].startswith("cpu "))
    assert startup["engine_threads"] == 1 and startup["cpu"]["usable_cores"] == "1", startup
    assert startup["message"].endswith("1 usable cores; engine threads 1 (the usable cores)")
    loaded = next(r for r in records if r["message"].startswith(f"loaded {MODEL} from /models/chat"))
    assert ", 1 threads," in loaded["message"], loaded


def test_one_cpu_is_on_the_info_metric_and_the_service_serves(one_cpu_chat: ChatContainer) -> None:
    info = re.search(r"^ortserve_cpu_info\{(.*)\} 1\.0$", one_cpu_chat.metrics(), re.MULTILINE)
    assert info is not None and 'usable_cores="1"' in info.group(1), info
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "temperature": 0}
    reply = httpx.post(one_cpu_chat.base_url + "/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] >= 1, reply.text
