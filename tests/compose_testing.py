"""The stack under docker compose (tools/compose.py up), as a project of its own on free ports, and clients for it.

The images come from `make images` (a prerequisite of `make test`); the project's containers, network and volumes
are removed at the end. Everything is reached on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from ortserve_testing.processes import free_port
from ortserve_testing.stack import ROOT, LocalStack


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as tools/compose.py writes them."""
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


class ComposeStack(LocalStack):
    """LocalStack's clients (openai(), http()) on a compose project; `replicas` maps a service to its scale."""

    def __init__(self, run_dir: Path, replicas: dict[str, int]) -> None:
        self.run_dir = run_dir
        self.project = f"ortserve-test-{uuid.uuid4().hex[:8]}"
        self.ports = {"PROXY_HTTPS_PORT": str(free_port()), "PROMETHEUS_PORT": str(free_port())}
        self.env = {
            **os.environ,
            **self.ports,
            "COMPOSE_PROJECT_NAME": self.project,
            "ORTSERVE_COMPOSE_DIR": str(run_dir),
            "PROXY_BIND": "127.0.0.1",
            **{f"{name.upper()}_REPLICAS": str(count) for name, count in replicas.items()},
        }
        self.base_url = self.proxy_url = f"https://localhost:{self.ports['PROXY_HTTPS_PORT']}"
        self.prometheus_url = f"http://127.0.0.1:{self.ports['PROMETHEUS_PORT']}"

    def up(self) -> ComposeStack:
        result = subprocess.run(
            [sys.executable, str(ROOT / "tools/compose.py"), "up"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=420,
        )
        if result.returncode != 0:
            raise RuntimeError(f"compose stack did not come up:\n{result.stdout}\n{result.stderr}\n{self.logs()}")
        # What compose.py gave docker compose (keys, TLS and models folders), for this test's own compose commands.
        self.env.update(read_env_file(self.run_dir / "compose.env"))
        self.api_key = (self.run_dir / "api-key").read_text().strip()
        self.admin_key = (self.run_dir / "admin-key").read_text().strip()
        self.ca = str(self.run_dir / "tls/ca.pem")
        return self

    def down(self, volumes: bool = True) -> None:
        args = ["down", "--remove-orphans", *(["--volumes"] if volumes else [])]
        self.compose(*args, timeout=180, check=False)

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        command = ["docker", "compose", "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml")]
        result = subprocess.run([*command, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def logs(self, service: str = "") -> str:
        return self.compose("logs", "--no-color", "--tail", "200", *([service] if service else []), check=False)

    def containers(self, service: str) -> list[dict]:
        """The service's containers, running or not, as `docker compose ps` reports them."""
        out = self.compose("ps", "-a", "--format", "json", service)
        lines = [line for line in out.splitlines() if line.strip()]
        # Compose prints one JSON object per line (newer) or one JSON array (older).
        rows = json.loads(lines[0]) if lines and lines[0].startswith("[") else [json.loads(line) for line in lines]
        return sorted(rows, key=lambda row: row["Name"])

    def healthy(self, service: str) -> list[str]:
        return [row["Name"] for row in self.containers(service) if row.get("Health") == "healthy"]

    def ip(self, container: str) -> str:
        return docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container).strip()

    def replica_metric(self, container: str, name: str, port: int = 8000) -> float:
        """One unlabelled metric read from the replica's own /metrics, inside its container (not published)."""
        probe = (
            f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())"
        )
        text = docker("exec", container, "python", "-c", probe, timeout=30)
        match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def upstreams(self) -> dict[str, str]:
        """request id -> upstream address, from the proxy's JSON access log."""
        found = {}
        for line in self.compose("logs", "--no-color", "--no-log-prefix", "proxy", check=False).splitlines():
            if line.startswith("{") and '"request_id"' in line:
                entry = json.loads(line)
                found[entry["request_id"]] = entry["upstream"]
        return found

    def prometheus(self, query: str) -> list[dict]:
        url = f"{self.prometheus_url}/api/v1/query?query={urllib.parse.quote(query)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)["data"]["result"]

    def wait_until(self, what: str, condition: Callable[[], object], timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except (OSError, RuntimeError, KeyError, ValueError):
                pass
            time.sleep(1)
        raise AssertionError(f"not within {timeout_s:.0f}s: {what}\n{self.compose('ps', '-a', check=False)}")

    def replicas(self, model: str) -> int:
        return getattr(self.openai().models.retrieve(model), "replicas", 0)
