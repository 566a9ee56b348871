"""The whole product as local processes: registry, chat, embeddings and nginx, under supervisord.

    python tools/stack.py run     # foreground; Ctrl-C stops everything   (make run)
    python tools/stack.py up      # background                            (make up)
    python tools/stack.py down    # stop a background stack               (make down)

It makes a local CA and server certificate, renders nginx's config, writes supervisord.conf (crashed services are
restarted), waits until every service is healthy and prints the base URL, the CA path and an API key. State lives
in ORTSERVE_RUN_DIR (default ./run): TLS files, the registry's keys, logs.

ORTSERVE_TRACES=1 also starts tools/otlp_receiver.py (port OTLP_RECEIVER_PORT, default 4318) and points every
service's OTLP exporter at it: each span becomes a JSON line in run/traces.jsonl. Without it the services export
only where the caller's own OTEL_* variables say.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ortserve_common.models_dir import models_dir as bundled_models_dir
from supervisord_conf import supervisord_conf  # tools/: this script's folder

ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("stack")

PORTS = {
    "CHAT_PORT": "8000",
    "EMBED_PORT": "8001",
    "MODELS_PORT": "8002",
    "PROXY_HTTPS_PORT": "8443",
    "OTLP_RECEIVER_PORT": "4318",
    "LIMITS_STORE_PORT": "6379",
}


def traces_on() -> bool:
    return os.environ.get("ORTSERVE_TRACES", "").strip().lower() in ("1", "true", "yes", "on")


def _secret_file(path: Path, prefix: str) -> str:
    """A key made once and kept, so restarts keep working with the same credentials."""
    if not path.exists():
        path.write_text(prefix + secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def chat_models(models_dir: Path) -> dict[str, str | Path]:
    """CHAT_MODEL_PATH, when set, serves that one model; else the chat models of the manifest that the registry reads
    too (SmolLM2 and Qwen2.5-Coder-0.5B; CHAT_MODELS picks among them), each with its own slots and defaults."""
    if os.environ.get("CHAT_MODEL_PATH"):
        return {"CHAT_MODEL_PATH": os.environ["CHAT_MODEL_PATH"]}
    manifest = (
        os.environ.get("CHAT_MODELS_FILE")
        or os.environ.get("MODELS_MANIFEST")
        or ROOT / "services/models/manifest.yaml"
    )
    return {"CHAT_MODELS_FILE": manifest, "CHAT_MODELS_DIR": models_dir}


def prepare(run_dir: Path) -> dict[str, str]:
    models_dir = bundled_models_dir()
    ports = {key: os.environ.get(key, default) for key, default in PORTS.items()}
    for sub in ("logs", "models-data"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    subprocess.run(["bash", str(ROOT / "proxy/gen-certs.sh"), str(run_dir / "tls")], check=True)
    api_key = _secret_file(run_dir / "api-key", "sk-ortserve-")
    admin_key = _secret_file(run_dir / "admin-key", "sk-admin-")
    registry = f"http://127.0.0.1:{ports['MODELS_PORT']}"
    env = {
        **ports,
        "CHAT_UPSTREAM": f"127.0.0.1:{ports['CHAT_PORT']}",
        "EMBEDDINGS_UPSTREAM": f"127.0.0.1:{ports['EMBED_PORT']}",
        "REGISTRY_UPSTREAM": f"127.0.0.1:{ports['MODELS_PORT']}",
        "PROXY_ACCESS_LOG": str(run_dir / "logs/proxy-access.log"),
    }
    os.environ.update(env)
    # proxy/ is not a package: its renderer is a script, loaded from its file.
    spec = importlib.util.spec_from_file_location("proxy_render", ROOT / "proxy/render.py")
    assert spec is not None and spec.loader is not None
    renderer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(renderer)
    nginx_conf = renderer.render(run_dir / "proxy")
    python = sys.executable
    redis_server = shutil.which("redis-server")
    limits_store = f"redis://127.0.0.1:{ports['LIMITS_STORE_PORT']}/0" if redis_server else ""
    if not redis_server:
        logger.warning("no redis-server (make redis installs it): per-key limits go uncounted (fail open)")
    programs = {
        "registry": (
            f"{python} -m models_service",
            {
                "MODELS_DATA_DIR": run_dir / "models-data",
                "MODELS_API_KEYS": api_key,
                "MODELS_ADMIN_KEY": admin_key,
                "MODELS_LIMITS_STORE_URL": limits_store,
            },
        ),
        "chat": (
            f"{python} -m chat_service",
            {
                **chat_models(models_dir),
                "CHAT_REGISTRY_URL": registry,
                "CHAT_ADMIN_KEY": admin_key,
                "CHAT_DATA_DIR": os.environ.get("CHAT_DATA_DIR", run_dir / "chat-data"),
                "CHAT_LIMITS_STORE_URL": limits_store,
            },
        ),
        "embeddings": (
            f"{python} -m embeddings_service",
            {
                "EMBED_MODELS_DIR": models_dir,
                "EMBED_REGISTRY_URL": registry,
                "EMBED_ADMIN_KEY": admin_key,
                "EMBED_LIMITS_STORE_URL": limits_store,
            },
        ),
        "proxy": (f"{shutil.which('nginx') or 'nginx'} -p {run_dir / 'proxy'} -c {nginx_conf} -g 'daemon off;'", {}),
    }
    if redis_server:
        # The per-key limits counters: in memory only (they are per minute and per day; a restart starts them afresh).
        programs["limits-store"] = (
            f"{redis_server} --port {ports['LIMITS_STORE_PORT']} --bind 127.0.0.1 --save '' --appendonly no",
            {},
        )
    for name, service_name in (
        ("registry", "ortserve-models"),
        ("chat", "ortserve-chat"),
        ("embeddings", "ortserve-embeddings"),
    ):
        programs[name][1]["OTEL_SERVICE_NAME"] = service_name
        if traces_on():
            programs[name][1]["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{ports['OTLP_RECEIVER_PORT']}"
            programs[name][1]["OTEL_BSP_SCHEDULE_DELAY"] = "500"  # ms: spans show up while you look, not 5 s later
    if traces_on():
        programs["otlp-receiver"] = (
            f"{python} {ROOT / 'tools/otlp_receiver.py'} --port {ports['OTLP_RECEIVER_PORT']} "
            f"--out {run_dir / 'traces.jsonl'}",
            {},
        )
    (run_dir / "supervisord.conf").write_text(supervisord_conf(run_dir, env, programs))
    info = {"api_key": api_key, "admin_key": admin_key, "ca": str(run_dir / "tls/ca.pem"), **ports}
    info["limits_store"] = limits_store
    if traces_on():
        info["traces"] = str(run_dir / "traces.jsonl")
    return info


def wait_healthy(info: dict[str, str], run_dir: Path, timeout_s: float = 120) -> None:
    checks = {
        "registry": f"http://127.0.0.1:{info['MODELS_PORT']}/ready",
        "chat": f"http://127.0.0.1:{info['CHAT_PORT']}/ready",
        "embeddings": f"http://127.0.0.1:{info['EMBED_PORT']}/ready",
        "proxy": f"https://localhost:{info['PROXY_HTTPS_PORT']}/health",
    }
    if info.get("limits_store"):
        checks["limits-store"] = info["limits_store"]
    if "traces" in info:
        checks["otlp-receiver"] = f"http://127.0.0.1:{info['OTLP_RECEIVER_PORT']}/health"
    context = ssl.create_default_context(cafile=info["ca"])
    pending = dict(checks)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for name, url in list(pending.items()):
            try:
                if url.startswith("redis://"):
                    _redis_ping(url)
                else:
                    with urllib.request.urlopen(url, timeout=2, context=context if url.startswith("https") else None):
                        pass
                pending.pop(name)
                logger.info("%s is ready", name)
            except OSError:
                pass
        time.sleep(0.5)
    if pending:
        raise SystemExit(f"not healthy after {timeout_s:.0f}s: {', '.join(pending)} (logs in {run_dir / 'logs'})")


def _redis_ping(url: str) -> None:
    """Raises OSError until the Redis at `url` (redis://host:port/db) answers PING."""
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=2) as conn:
        conn.sendall(b"PING\r\n")
        if not conn.recv(16).startswith(b"+PONG"):
            raise OSError("no PONG yet")


def banner(info: dict[str, str]) -> str:
    base = f"https://localhost:{info['PROXY_HTTPS_PORT']}/v1"
    return (
        "\n  ortserve is up\n"
        f"  base URL   {base}\n"
        f"  CA file    {info['ca']}\n"
        f"  API key    {info['api_key']}\n"
        f"  admin key  {info['admin_key']}\n"
        f"  try        curl --cacert {info['ca']} -H 'Authorization: Bearer {info['api_key']}' {base}/models\n"
        + (f"  traces     {info['traces']} (one JSON line per span)\n" if "traces" in info else "")
    )


def down(run_dir: Path, bin_dir: Path, conf: Path) -> int:
    """Stop the stack and return only once every process has exited, so its ports are free for the next `up`
    (supervisorctl's shutdown returns as soon as supervisord has taken the request)."""
    if not (run_dir / "supervisor.sock").exists():
        logger.info("no stack is running from %s", run_dir)
        return 0
    ctl = [bin_dir / "supervisorctl", "-c", conf]
    listed = subprocess.run([*ctl, "pid", "all"], capture_output=True, text=True, check=False).stdout.split()
    pids = {int(pid) for pid in listed if pid.isdigit() and pid != "0"}
    pidfile = run_dir / "supervisord.pid"
    if pidfile.exists():
        pids.add(int(pidfile.read_text().strip()))
    # Each program gets its stopwaitsecs to drain, then it is killed.
    waits = [int(line.split("=", 1)[1]) for line in conf.read_text().splitlines() if line.startswith("stopwaitsecs=")]
    limit_s = max(waits, default=35) + 30
    code = subprocess.run([*ctl, "shutdown"], check=False).returncode
    deadline = time.monotonic() + limit_s
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if _alive(pid)}
        time.sleep(0.1)
    if pids:
        logger.error("still running after %d s: pids %s", limit_s, sorted(pids))
        return 1
    logger.info("stopped")
    return code


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return not state.startswith("Z")  # a zombie has exited; only its parent's wait is missing


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s stack %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "up", "down"])
    args = parser.parse_args()
    run_dir = Path(os.environ.get("ORTSERVE_RUN_DIR", ROOT / "run")).resolve()
    bin_dir = Path(sys.executable).parent
    conf = run_dir / "supervisord.conf"
    if args.command == "down":
        return down(run_dir, bin_dir, conf)
    info = prepare(run_dir)
    if args.command == "up":
        subprocess.run([bin_dir / "supervisord", "-c", conf], check=True)
        wait_healthy(info, run_dir)
        sys.stdout.write(banner(info) + "  stop it   make down\n")
        return 0
    supervisor = subprocess.Popen([bin_dir / "supervisord", "-n", "-c", conf])
    try:
        wait_healthy(info, run_dir)
        sys.stdout.write(banner(info) + "  stop it   Ctrl-C\n")
        sys.stdout.flush()
        return supervisor.wait()
    except (KeyboardInterrupt, SystemExit):
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(60)
        raise
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
            supervisor.wait(60)


if __name__ == "__main__":
    sys.exit(main())
