"""The same compose file on a Docker Swarm (single node: `docker swarm init` here, left again at the end when this
test made it): chat runs as two tasks behind the proxy, both serve, and a rolling update of chat
(`docker service update --force`) under a bounded load fails no request. Black box through nginx, OpenAI SDK.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from compose_testing import ROOT, ComposeStack, docker

# The module starts a whole stack of its own (under docker compose / on a swarm): a stack test.
pytestmark = pytest.mark.stack

CHAT_MODEL = "smollm2-135m-instruct"


class SwarmStack(ComposeStack):
    """ComposeStack's clients and helpers on a swarm stack deployed by tools/swarm.py."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir, {"chat": 2, "embeddings": 1})
        self.stack = f"ortserve-swarm-{uuid.uuid4().hex[:6]}"
        self.env["ORTSERVE_STACK"] = self.stack

    def up(self) -> SwarmStack:
        command = [sys.executable, str(ROOT / "tools/swarm.py"), "up"]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=420)
        if result.returncode != 0:
            raise RuntimeError(f"swarm stack did not come up:\n{result.stdout}\n{result.stderr}")
        self.api_key = (self.run_dir / "api-key").read_text().strip()
        self.admin_key = (self.run_dir / "admin-key").read_text().strip()
        self.ca = str(self.run_dir / "tls/ca.pem")
        return self

    def down(self, volumes: bool = True) -> None:
        subprocess.run([sys.executable, str(ROOT / "tools/swarm.py"), "down"], env=self.env, timeout=180, check=False)
        if volumes:
            label = f"label=com.docker.stack.namespace={self.stack}"
            for name in docker("volume", "ls", "-q", "--filter", label).split():
                docker("volume", "rm", name, check=False)

    def task_ips(self, service: str) -> set[str]:
        ids = docker("service", "ps", "-q", "--filter", "desired-state=running", f"{self.stack}_{service}").split()
        template = "{{range .NetworksAttachments}}{{range .Addresses}}{{.}} {{end}}{{end}}"
        addresses = " ".join(docker("inspect", "-f", template, task) for task in ids).split()
        return {address.split("/")[0] for address in addresses}


@pytest.fixture(scope="module")
def swarm_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmStack]:
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("no Docker engine answers: `make docker-engine` installs and starts one (make test does)")
    subprocess.run([str(ROOT / "tools/docker/images.sh")], check=True, capture_output=True, timeout=900)
    ours = docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip() != "active"
    stack = SwarmStack(tmp_path_factory.mktemp("swarm"))
    try:
        yield stack.up()
    finally:
        stack.down(volumes=True)
        if ours and not os.environ.get("ORTSERVE_KEEP_SWARM"):
            docker("swarm", "leave", "--force", check=False)
            docker("network", "rm", "docker_gwbridge", check=False)  # made by swarm init, left behind by leave


def test_chat_runs_as_two_tasks_behind_the_proxy_and_both_serve(swarm_stack: SwarmStack) -> None:
    swarm_stack.wait_until("/v1/models counts two chat replicas", lambda: swarm_stack.replicas(CHAT_MODEL) == 2)
    client = swarm_stack.openai()
    for number in range(8):
        reply = client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": f"Say {number}."}], max_tokens=4
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
    query = 'sum by (instance) (ortserve_http_requests_total{job="chat", route="/v1/chat/completions"}) > 0'

    def both_served() -> bool:
        served = {s["metric"]["instance"].split(":")[0] for s in swarm_stack.prometheus(query)}
        return served == swarm_stack.task_ips("chat") and len(served) == 2

    swarm_stack.wait_until("both chat tasks counted chat completions (Prometheus)", both_served, timeout_s=60)


def test_a_rolling_update_of_chat_under_load_fails_no_request(swarm_stack: SwarmStack) -> None:
    client = swarm_stack.openai()
    stop = threading.Event()
    outcomes: list[str] = []

    def load() -> None:  # a bounded load: two clients, one short request after the other
        while not stop.is_set():
            try:
                reply = client.chat.completions.create(
                    model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
                )
                outcomes.append(reply.choices[0].finish_reason or "none")
            except (openai.APIError, httpx.HTTPError) as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")

    before = swarm_stack.task_ips("chat")
    with ThreadPoolExecutor(2) as pool:
        workers = [pool.submit(load) for _ in range(2)]
        try:
            # One task at a time, the new one started (and healthy) before the old one drains and stops.
            service = f"{swarm_stack.stack}_chat"
            docker("service", "update", "--force", "--detach=false", "--quiet", service, timeout=300)
            swarm_stack.wait_until("two chat replicas registered again", lambda: swarm_stack.replicas(CHAT_MODEL) == 2)
        finally:
            stop.set()
            for worker in workers:
                worker.result(timeout=120)
    assert swarm_stack.task_ips("chat").isdisjoint(before)  # every task was replaced
    failed = [outcome for outcome in outcomes if outcome not in ("stop", "length")]
    assert outcomes and not failed, failed
