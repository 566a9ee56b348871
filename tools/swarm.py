"""The same stack on a Docker Swarm: docker-compose.yml plus docker-compose.swarm.yml, deployed with docker stack.

    python tools/swarm.py up      # swarm init where none is active, deploy, wait, print the same block as make up
    python tools/swarm.py down    # docker stack rm, wait until its containers and network are gone

`docker stack deploy` reads the older compose v3 schema: it refuses keys of the compose specification that
docker-compose.yml uses for `docker compose` (profiles, pull_policy, depends_on conditions) and ignores service-level
tmpfs. So `docker compose config` renders the two files (variables, the override, active profiles only) and this
script rewrites just those keys before handing the result to `docker stack deploy`. Keys, TLS files and the models
folder are those of tools/compose.py (ORTSERVE_COMPOSE_DIR). ORTSERVE_STACK names the stack (default ortserve).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from compose import announce, compose_env, engine_or_say, state_dir  # tools/: this script's own folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent

logger = logging.getLogger("swarm")
# What the v3 schema of `docker stack deploy` does not know; the images are built beforehand (make images).
COMPOSE_ONLY_KEYS = ("pull_policy", "build", "profiles", "container_name")


def render(env: dict[str, str], overrides: tuple[str, ...] = ()) -> dict:
    """The stack file: docker-compose.yml, docker-compose.swarm.yml, then each of `overrides` (make cluster-up's)."""
    names = ("docker-compose.yml", "docker-compose.swarm.yml", *overrides)
    files = [arg for name in names for arg in ("-f", str(ROOT / name))]
    out = subprocess.run(
        ["docker", "compose", "--project-directory", str(ROOT), *files, "config", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    config = json.loads(out)
    config.pop("name", None)
    for section in ("networks", "volumes"):
        for item in (config.get(section) or {}).values():
            if item:
                item.pop("name", None)  # compose's project-prefixed names: the stack's own namespace applies instead
    for service in config["services"].values():
        for key in COMPOSE_ONLY_KEYS:
            service.pop(key, None)
        if isinstance(service.get("depends_on"), dict):
            service["depends_on"] = list(service["depends_on"])  # swarm starts tasks in any order anyway
        for key in ("command", "entrypoint"):
            if service.get(key) is None:
                service.pop(key, None)
        for port in service.get("ports", []):
            port["published"] = int(port["published"])
            port.pop("host_ip", None)  # swarm publishes on every address of every node (the routing mesh)
        for mount in service.get("volumes", []):
            mount.pop("bind", None)
            mount.pop("volume", None)
        # Swarm has no service-level tmpfs; a tmpfs mount is the same thing.
        service.setdefault("volumes", []).extend({"type": "tmpfs", "target": t} for t in service.pop("tmpfs", []))
    config["version"] = "3.9"
    return {key: value for key, value in config.items() if not key.startswith("x-")}


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check).stdout.strip()


def wait_converged(stack: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = docker("stack", "services", stack, "--format", "{{.Replicas}}").split()
        if rows and all(row.split("/")[0] == row.split("/")[1] for row in rows):
            return
        time.sleep(2)
    raise SystemExit(f"stack {stack} did not converge within {timeout_s:.0f}s:\n{docker('stack', 'ps', stack)}")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s swarm %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args()
    if not engine_or_say():
        return 1
    stack = os.environ.get("ORTSERVE_STACK", "ortserve")
    state = state_dir()
    if args.command == "down":
        docker("stack", "rm", stack, check=False)
        # `stack rm` returns at once; the containers drain (stop_grace_period) and the network goes after them.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
            docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={stack}")
            or docker("network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}")
        ):
            time.sleep(1)
        logger.info("stack %s removed (its volumes stay; docker volume rm %s_keys-data ... removes them)", stack, stack)
        return 0
    if docker("info", "--format", "{{.Swarm.LocalNodeState}}") != "active":
        # A single-node swarm on this host; a multi-host one is initialised and joined by hand (docs/SCALING.md).
        docker("swarm", "init", "--advertise-addr", os.environ.get("SWARM_ADVERTISE_ADDR", "127.0.0.1"))
        logger.info("initialised a single-node swarm (docker swarm leave --force undoes it)")
    env = {**os.environ, **compose_env(state)}
    stack_file = state / "stack.yml"
    stack_file.write_text(yaml.safe_dump(render(env), sort_keys=False))
    subprocess.run(["docker", "stack", "deploy", "-c", str(stack_file), stack], check=True)
    wait_converged(stack)
    announce(env, "make swarm-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
