"""The stack on a Docker Swarm of several nodes, each node a container of this host (make cluster-up / cluster-down).

    python tools/cluster.py up      # nodes, swarm, images, `docker stack deploy`; then the same block as make up
    python tools/cluster.py down    # every node container, its engine's volume, the network: gone

The stack file is docker-compose.yml + docker-compose.swarm.yml + docker-compose.cluster.yml, rendered as for
`make swarm-up` (tools/swarm.py) and deployed from the manager node. Chat runs CHAT_REPLICAS (3) replicas of SmolLM2
spread across the nodes, embeddings EMBEDDINGS_REPLICAS (2); the registry, the proxy and PostgreSQL (conversations)
run on the manager, whose container publishes the proxy on 127.0.0.1:CLUSTER_HTTPS_PORT (8643). The models folder and
the TLS files are bind-mounted read-only into every node at the same paths: the nodes share this host's disk, so a
copy per node would only cost space (real hosts each get their own copy; docs/DEPLOYMENT.md). Prometheus is left
out of the cluster (one fewer image on every node). Names: ORTSERVE_CLUSTER (prefix, default ortserve-cluster),
NODES (3), images tagged ORTSERVE_TAG (default cluster, so that rebuilding them never changes another stack's
`latest`); keys, TLS and the stack file under ORTSERVE_CLUSTER_DIR (./run/cluster).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from cluster_nodes import NODE_IMAGE, Cluster, docker, in_node, wait_for  # tools/: this script's folder
from compose import announce, compose_env, engine_or_say
from stack import _secret_file
from swarm import render

ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("cluster")
STACK = "ortserve"
EVERY_NODE_IMAGES = ("chat", "embeddings")
MANAGER_IMAGES = ("models", "proxy", "postgres", "redis")
LEFT_OUT = ("prometheus",)


def settings() -> dict[str, str]:
    return {
        "prefix": os.environ.get("ORTSERVE_CLUSTER", "ortserve-cluster"),
        "nodes": os.environ.get("NODES", "3"),
        "port": os.environ.get("CLUSTER_HTTPS_PORT", "8643"),
        "tag": os.environ.get("ORTSERVE_TAG", "cluster"),
        "base": os.environ.get("ORTSERVE_LOCAL_BASE", "ortserve-base:bookworm"),
        "state": os.environ.get("ORTSERVE_CLUSTER_DIR", str(ROOT / "run/cluster")),
    }


def build_cluster_images(base: str, tag: str) -> None:
    """The node image and PostgreSQL from Debian's packages on the local base (from the engine's cache once built)."""
    subprocess.run([str(ROOT / "tools/docker/base-image.sh"), base], check=True)  # a no-op while it is up to date
    for image, dockerfile in ((NODE_IMAGE, "node"), (f"ortserve-postgres:{tag}", "postgres")):
        start = time.monotonic()
        result = subprocess.run(
            ["docker", "build", "-q", "-f", f"deploy/cluster/{dockerfile}.Dockerfile", "--build-arg",
             f"BASE_IMAGE={base}", "--label", "org.ortserve.image=cluster", "-t", image, "."],
            cwd=ROOT, env={**os.environ, "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(f"building {image} failed:\n{result.stderr[-2000:]}")
        logger.info("%s built (%.0f s)", image, time.monotonic() - start)


def stack_env(conf: dict[str, str]) -> dict[str, str]:
    state = Path(conf["state"])
    env = {**os.environ, **compose_env(state)}
    env.setdefault("CHAT_MODELS", "smollm2-135m-instruct")
    env.setdefault("ORTSERVE_POSTGRES_PASSWORD", _secret_file(state / "postgres-password", "pg-"))
    # Inside the stack the proxy publishes 8443 on the manager node; the node container maps the host port to it.
    return {**env, "ORTSERVE_TAG": conf["tag"], "PROXY_HTTPS_PORT": "8443"}


def stack_file(env: dict[str, str]) -> str:
    config = render(env, ("docker-compose.cluster.yml",))
    for name in LEFT_OUT:
        config["services"].pop(name, None)
        config.get("volumes", {}).pop(f"{name}-data", None)
    return yaml.safe_dump(config, sort_keys=False)


def wait_converged(manager: str, timeout_s: float = 600) -> None:
    def converged() -> bool:
        rows = in_node(manager, "stack", "services", STACK, "--format", "{{.Replicas}}", check=False).split()
        return bool(rows) and all(row.split("/")[0] == row.split("/")[1].split()[0] for row in rows)

    try:
        wait_for(converged, f"every service of the stack {STACK} to run its replicas", timeout_s)
    except SystemExit:
        sys.stderr.write(in_node(manager, "stack", "ps", STACK, "--no-trunc", check=False) + "\n")
        raise


def up(conf: dict[str, str]) -> int:
    started = time.monotonic()
    build_cluster_images(conf["base"], conf["tag"])
    env = stack_env(conf)
    cluster = Cluster(conf["prefix"])
    mounts = [env["ORTSERVE_MODELS_HOST_DIR"], env["ORTSERVE_TLS_DIR"]]
    names = cluster.start(int(conf["nodes"]), int(conf["port"]), mounts)
    cluster.form_swarm(names)
    logger.info("swarm of %d nodes formed (%.0f s)", len(names), time.monotonic() - started)
    tag = conf["tag"]
    cluster.load_images(
        names, [f"ortserve-{i}:{tag}" for i in EVERY_NODE_IMAGES], [f"ortserve-{i}:{tag}" for i in MANAGER_IMAGES]
    )
    path = Path(conf["state"]) / "stack.yml"
    path.write_text(stack_file(env))
    path.chmod(0o600)  # it holds the keys
    docker("cp", str(path), f"{cluster.manager}:/root/stack.yml")
    # --resolve-image never: there is no registry to ask for digests; each node runs the image it was loaded with.
    in_node(cluster.manager, "stack", "deploy", "--resolve-image", "never", "--prune", "-c", "/root/stack.yml", STACK)
    wait_converged(cluster.manager)
    logger.info("stack deployed on %d nodes (%.0f s since start)", len(names), time.monotonic() - started)
    announce({**env, "PROXY_HTTPS_PORT": conf["port"]}, "make cluster-down")
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s cluster %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args()
    if not engine_or_say():
        return 1
    conf = settings()
    if args.command == "down":
        Cluster(conf["prefix"]).remove()
        logger.info("cluster %s removed (nodes, their engines' volumes, its network)", conf["prefix"])
        return 0
    return up(conf)


if __name__ == "__main__":
    sys.exit(main())
