"""The stack on a three-node swarm of node containers (tools/cluster.py up), and what the cluster tests need of it.

One cluster serves a whole test module: `up` reuses nodes, images and a deployed stack that are already there, so a
second run on a kept cluster (ORTSERVE_KEEP_CLUSTER=1) starts in seconds. Every name carries the prefix
ORTSERVE_CLUSTER (default ortserve-cluster-test), so nothing collides with a cluster of make cluster-up or another
engineer's compose project.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
from compose_testing import ComposeStack, docker
from ortserve_testing.stack import ROOT

CHAT_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "all-minilm-l6-v2"
STACK = "ortserve"


class ClusterStack(ComposeStack):
    """ComposeStack's clients (openai(), http(), wait_until) on the cluster; commands run in the manager node."""

    def __init__(self, run_dir: Path, prefix: str, port: int) -> None:
        super().__init__(run_dir, {"chat": 3, "embeddings": 2})
        self.prefix = prefix
        self.manager = f"{prefix}-node1"
        self.env.update(
            {"ORTSERVE_CLUSTER": prefix, "CLUSTER_HTTPS_PORT": str(port), "ORTSERVE_CLUSTER_DIR": str(run_dir)}
        )
        self.base_url = self.proxy_url = f"https://localhost:{port}"

    def up(self) -> ClusterStack:
        command = [sys.executable, str(ROOT / "tools/cluster.py"), "up"]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=1500)
        if result.returncode != 0:
            raise RuntimeError(f"the cluster did not come up:\n{result.stdout}\n{result.stderr[-4000:]}")
        self.api_key = (self.run_dir / "api-key").read_text().strip()
        self.admin_key = (self.run_dir / "admin-key").read_text().strip()
        self.ca = str(self.run_dir / "tls/ca.pem")
        return self

    def down(self, volumes: bool = True) -> None:
        subprocess.run([sys.executable, str(ROOT / "tools/cluster.py"), "down"], env=self.env, timeout=300, check=False)

    def swarm(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return docker("exec", self.manager, "docker", *args, timeout=timeout, check=check)

    def tasks(self, service: str) -> list[dict]:
        """Every task of the service the manager knows (running or not): node, state and overlay addresses."""
        ids = self.swarm("service", "ps", "-q", "--no-trunc", f"{STACK}_{service}").split()
        if not ids:
            return []
        rows = json.loads(self.swarm("inspect", *ids))
        nodes = {
            n["ID"]: n["Description"]["Hostname"] for n in json.loads(self.swarm("node", "inspect", *self.node_ids()))
        }
        return [
            {
                "node": nodes.get(row.get("NodeID", ""), "?"),
                "state": row["Status"]["State"],
                "desired": row["DesiredState"],
                "ips": [
                    a.split("/")[0] for net in row.get("NetworksAttachments", []) for a in net.get("Addresses", [])
                ],
            }
            for row in rows
        ]

    def node_ids(self) -> list[str]:
        return self.swarm("node", "ls", "-q").split()

    def running_nodes(self, service: str) -> list[str]:
        return sorted(t["node"] for t in self.tasks(service) if t["state"] == "running" and t["desired"] == "running")

    def card(self, model: str) -> dict:
        with self.http() as http:
            response = http.get(f"/v1/models/{model}", headers={"Authorization": f"Bearer {self.api_key}"})
        return response.json() if response.status_code == 200 else {}

    def access_log(self) -> dict[str, dict]:
        """request id -> the proxy's JSON access-log entry (the proxy runs on the manager)."""
        found = {}
        logs = self.swarm("service", "logs", "--raw", f"{STACK}_proxy", check=False)
        for line in logs.splitlines():
            if line.startswith("{") and '"request_id"' in line:
                entry = json.loads(line)
                found[entry["request_id"]] = entry
        return found

    def upstreams(self) -> dict[str, str]:
        """request id -> upstream address(es) nginx tried, in order ("a:8000, b:8000" after a retry)."""
        return {rid: entry["upstream"] for rid, entry in self.access_log().items()}


@dataclass
class Outcome:
    trace_id: str
    started: float
    ended: float = 0.0
    error: str = ""


@dataclass
class StreamLoad:
    """`workers` clients, each streaming one short chat completion after another until stopped; every stream is
    recorded with its trace id (nginx logs it as request_id), start, end and error (empty when it completed)."""

    client: openai.OpenAI
    workers: int = 3
    max_tokens: int = 24
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> StreamLoad:
        for _ in range(self.workers):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=300)

    def _run(self) -> None:
        while not self._stop.is_set():
            trace = uuid.uuid4().hex
            outcome = Outcome(trace, time.monotonic())
            self.outcomes.append(outcome)
            try:
                stream = self.client.chat.completions.create(
                    model=CHAT_MODEL,
                    messages=[{"role": "user", "content": "Count from one to twenty in words."}],
                    max_tokens=self.max_tokens,
                    stream=True,
                    extra_headers={"traceparent": f"00-{trace}-{trace[:16]}-01"},
                )
                finish = None
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].finish_reason:
                        finish = chunk.choices[0].finish_reason
                if finish is None:
                    raise RuntimeError("the stream ended without a finish_reason")
            except (openai.APIError, httpx.HTTPError, RuntimeError) as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"[:300]
            outcome.ended = time.monotonic()

    def completed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ended and not o.error]

    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ended and o.error]


def cluster_prefix() -> str:
    return os.environ.get("ORTSERVE_CLUSTER", "ortserve-cluster-test")
