"""The node containers of `make cluster-up`: each one a Docker engine of its own, joined into one swarm.

Docker-in-Docker without --privileged: this kind of VM lacks CAP_SYS_RESOURCE in its bounding set, so a privileged
container fails to start ("unable to apply caps"). SYS_ADMIN and NET_ADMIN, no seccomp or AppArmor profile, and the
host's cgroup tree mounted read-write are what the inner engine needs (../shared notes, docker.md); SYS_PTRACE
too, or the inner engine cannot exec a health check into a container whose user is not root ("error executing setns
process"), and Swarm would replace every such task as unhealthy. No registry:
images travel into each node by `docker save` | `docker load`.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("cluster")
NODE_IMAGE = "ortserve-cluster-node:latest"
LABEL = "org.ortserve.cluster"
INNER_ENGINE_OPTIONS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_PTRACE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--cgroupns", "host",
]  # fmt: skip


def docker(*args: str, check: bool = True, stdin: object = None) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, stdin=stdin)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise SystemExit(f"docker {' '.join(args[:4])} ... failed: {result.stderr.strip()[-800:]}")
    return str(result.stdout).strip()


def in_node(node: str, *args: str, check: bool = True) -> str:
    return docker("exec", node, "docker", *args, check=check)


@dataclass(frozen=True)
class Cluster:
    """Names: every container, network and volume made is `<prefix>-...` and carries the label, so down finds them."""

    prefix: str

    @property
    def network(self) -> str:
        return f"{self.prefix}-net"

    @property
    def manager(self) -> str:
        return self.node(1)

    def node(self, index: int) -> str:
        return f"{self.prefix}-node{index}"

    def nodes(self) -> list[str]:
        return sorted(docker("ps", "-a", "--filter", f"label={LABEL}={self.prefix}", "--format", "{{.Names}}").split())

    def start(self, count: int, port: int, mounts: list[str]) -> list[str]:
        """Start `count` node containers (the first is the manager and publishes the proxy on 127.0.0.1:port)."""
        if not docker("network", "ls", "-q", "--filter", f"name=^{self.network}$"):
            docker("network", "create", "--label", f"{LABEL}={self.prefix}", self.network)
        names = []
        for index in range(1, count + 1):
            name = self.node(index)
            names.append(name)
            if docker("ps", "-aq", "--filter", f"name=^{name}$"):
                docker("start", name)
                continue
            volume_label = f"volume-label={LABEL}={self.prefix}"
            ports = ["-p", f"127.0.0.1:{port}:8443"] if index == 1 else []
            volumes = [arg for mount in mounts for arg in ("-v", f"{mount}:{mount}:ro")]
            docker(
                "run", "-d", "--name", name, "--hostname", name, "--network", self.network,
                "--label", f"{LABEL}={self.prefix}", *INNER_ENGINE_OPTIONS, *ports, *volumes,
                "--mount", f"type=volume,source={name}-engine,target=/var/lib/docker,{volume_label}",
                NODE_IMAGE,
            )  # fmt: skip
        for name in names:
            wait_for(lambda n=name: in_node(n, "info", check=False) != "", f"the engine in {name}", 120)
        return names

    def form_swarm(self, names: list[str]) -> None:
        manager = names[0]
        if in_node(manager, "info", "--format", "{{.Swarm.LocalNodeState}}") != "active":
            template = f'{{{{(index .NetworkSettings.Networks "{self.network}").IPAddress}}}}'
            address = docker("inspect", "-f", template, manager)
            in_node(manager, "swarm", "init", "--advertise-addr", address)
        token = in_node(manager, "swarm", "join-token", "-q", "worker")
        address = in_node(manager, "info", "--format", "{{.Swarm.NodeAddr}}")
        for name in names[1:]:
            if in_node(name, "info", "--format", "{{.Swarm.LocalNodeState}}") != "active":
                in_node(name, "swarm", "join", "--token", token, f"{address}:2377")
        wait_for(lambda: self.ready_nodes() >= len(names), f"{len(names)} ready swarm nodes", 120)
        # Every node may run chat and embeddings; on real hosts only the machines with the memory get the labels.
        for name in names:
            in_node(manager, "node", "update", "--label-add", "ortserve.chat=true",
                    "--label-add", "ortserve.embeddings=true", name)  # fmt: skip

    def ready_nodes(self) -> int:
        rows = in_node(self.manager, "node", "ls", "--format", "{{.Status}} {{.Availability}}", check=False)
        return sum(1 for row in rows.splitlines() if row == "Ready Active")

    def load_images(self, names: list[str], everywhere: list[str], manager_only: list[str]) -> None:
        """One `docker save` into a file, then `docker load` in each node (a node with the same image ids skips it)."""
        with tempfile.TemporaryDirectory(prefix="ortserve-cluster-") as tmp:
            for group, targets in ((everywhere, names), (manager_only, names[:1])):
                archive = Path(tmp) / f"images-{len(targets)}.tar"
                ids = {image: docker("image", "inspect", "-f", "{{.Id}}", image) for image in group}
                for name in targets:
                    if all(in_node(name, "image", "inspect", "-f", "{{.Id}}", i, check=False) == ids[i] for i in group):
                        continue
                    start = time.monotonic()
                    if not archive.exists():  # one archive of the whole group serves every node
                        docker("save", "-o", str(archive), *group)
                    with archive.open("rb") as stream:
                        docker("exec", "-i", name, "docker", "load", "-q", stdin=stream)
                    logger.info("loaded %s into %s in %.0f s", ", ".join(group), name, time.monotonic() - start)

    def remove(self) -> None:
        for name in self.nodes():
            docker("rm", "-f", "-v", name, check=False)
        docker("network", "rm", self.network, check=False)
        for volume in docker("volume", "ls", "-q", "--filter", f"label={LABEL}={self.prefix}").split():
            docker("volume", "rm", "-f", volume, check=False)


def wait_for(condition, what: str, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")
