"""The stack under docker compose, as `make compose-up` / `make compose-down` run it.

    python tools/compose.py up      # TLS files, keys, `docker compose up --wait`; then the same block as make up
    python tools/compose.py down    # `docker compose down`: returns once every container has stopped

Keys and TLS files are made once under ORTSERVE_COMPOSE_DIR (default ./run/compose) and reused, so the stack keeps its
credentials across down and up; ORTSERVE_ADMIN_KEY / ORTSERVE_API_KEYS in the environment or in .env win over them.
The models folder is ORTSERVE_MODELS_DIR (the bundled SmolLM2 and MiniLM that `make model` builds), mounted read-only.
Anything else docker-compose.yml reads (CHAT_REPLICAS, PROXY_HTTPS_PORT, ...) passes through from the environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ortserve_common.models_dir import models_dir
from stack import _secret_file, banner  # tools/stack.py: this script's own folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent

logger = logging.getLogger("compose")
PROXY_UID = 101  # the proxy image's user: it must be able to read the TLS key


def bundled_models() -> str:
    """Where `make model` puts the models (the Makefile exports it; the same path when run by hand)."""
    return str(models_dir())


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def dotenv() -> dict[str, str]:
    from dotenv import dotenv_values  # only here; python-dotenv is a dev tool

    path = ROOT / ".env"
    return {k: v for k, v in dotenv_values(path).items() if v is not None} if path.exists() else {}


def compose_env(state: Path) -> dict[str, str]:
    """What docker compose needs on top of the caller's environment (which wins), and the banner's details."""
    state.mkdir(parents=True, exist_ok=True)
    tls = state / "tls"
    subprocess.run(["bash", str(ROOT / "proxy/gen-certs.sh"), str(tls)], check=True, capture_output=True)
    key = tls / "server.key"
    # gen-certs.sh keeps the key 0600 for its creator; the proxy reads it as uid 101 through a read-only mount.
    if os.geteuid() == 0:
        os.chown(key, PROXY_UID, -1)
    else:
        key.chmod(0o644)
    given = {**dotenv(), **os.environ}
    env = {
        "ORTSERVE_ADMIN_KEY": given.get("ORTSERVE_ADMIN_KEY") or _secret_file(state / "admin-key", "sk-admin-"),
        "ORTSERVE_API_KEYS": given.get("ORTSERVE_API_KEYS") or _secret_file(state / "api-key", "sk-ortserve-"),
        "ORTSERVE_TLS_DIR": given.get("ORTSERVE_TLS_DIR") or str(tls),
        "ORTSERVE_MODELS_HOST_DIR": given.get("ORTSERVE_MODELS_HOST_DIR") or bundled_models(),
    }
    # For compose commands of your own on this stack: docker compose --env-file run/compose/compose.env ps
    env_file = state / "compose.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    env_file.chmod(0o600)
    return env


def wait_serving(base: str, ca: str, api_key: str, timeout_s: float = 180) -> None:
    """`up --wait` saw every container healthy; wait until the proxy also lists a chat and an embeddings model
    (each replica registers with the registry by heartbeat, a moment after it is ready)."""
    import json

    context = ssl.create_default_context(cafile=ca)
    request = urllib.request.Request(f"{base}/models", headers={"Authorization": f"Bearer {api_key}"})
    deadline = time.monotonic() + timeout_s
    kinds: set[str] = set()
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                kinds = {card.get("service") for card in json.load(response)["data"]}
            if {"chat", "embeddings"} <= kinds:
                return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"the proxy at {base} did not list chat and embeddings models within {timeout_s:.0f}s")


def state_dir() -> Path:
    return Path(os.environ.get("ORTSERVE_COMPOSE_DIR", ROOT / "run/compose")).resolve()


def engine_or_say() -> bool:
    if engine_answers():
        return True
    sys.stderr.write("no Docker engine answers here: `make docker-engine` installs Debian's and starts it\n")
    return False


def announce(env: dict[str, str], stop_command: str) -> None:
    """Once the proxy serves: the same block as `make up` prints."""
    port = env.get("PROXY_HTTPS_PORT", "8443")
    api_key = env["ORTSERVE_API_KEYS"].split(",")[0].strip()
    ca = str(Path(env["ORTSERVE_TLS_DIR"]) / "ca.pem")
    wait_serving(f"https://localhost:{port}/v1", ca, api_key)
    info = {"api_key": api_key, "admin_key": env["ORTSERVE_ADMIN_KEY"], "ca": ca, "PROXY_HTTPS_PORT": port}
    sys.stdout.write(banner(info) + f"  stop it    {stop_command}\n")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s compose %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args()
    if not engine_or_say():
        return 1
    env = {**os.environ, **compose_env(state_dir())}
    compose = ["docker", "compose", "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml")]
    if args.command == "down":
        # Stops every container (each within its stop_grace_period) and removes them and the network; the volumes
        # (keys, conversations, metrics) stay for the next up.
        return subprocess.run([*compose, "down"], env=env, check=False).returncode
    # The images are already built (make images); --no-build keeps `up` from rebuilding them.
    up = [*compose, "up", "-d", "--no-build", "--wait", "--wait-timeout", "300"]
    result = subprocess.run(up, env=env, check=False)
    if result.returncode != 0:
        subprocess.run([*compose, "ps", "-a"], env=env, check=False)
        raise SystemExit("docker compose up failed; `docker compose logs` shows why")
    announce(env, "make compose-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
