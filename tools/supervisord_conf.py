"""supervisord.conf for the local stack (tools/stack.py): one program per service, each with its environment, its
log file and a stop timeout that outlasts the service's own drain."""

from __future__ import annotations

import math
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_PREFIX = {"registry": "MODELS_", "chat": "CHAT_", "embeddings": "EMBED_"}
DEFAULT_DRAIN_S = 30.0


def supervisord_conf(run_dir: Path, env: dict[str, str], programs: dict[str, tuple[str, dict]]) -> str:
    """env: what every program gets; programs: {name: (command, its own environment)}."""
    sections = [
        "[unix_http_server]",
        f"file={run_dir / 'supervisor.sock'}",
        "[supervisord]",
        f"logfile={run_dir / 'logs/supervisord.log'}",
        f"pidfile={run_dir / 'supervisord.pid'}",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{run_dir / 'supervisor.sock'}",
    ]
    for name, (command, extra_env) in programs.items():
        environment = ",".join(f'{k}="{v}"' for k, v in {**env, **extra_env}.items())
        # A service drains for its *_DRAIN_TIMEOUT_S after SIGTERM; supervisord kills only a little after that.
        drain_s = float(os.environ.get(f"{SETTINGS_PREFIX.get(name, '-')}DRAIN_TIMEOUT_S", DEFAULT_DRAIN_S))
        sections += [
            f"[program:{name}]",
            f"command={command}",
            f"directory={ROOT}",
            f"environment={environment}",
            "autorestart=true",
            "startsecs=2",
            "stopsignal=TERM" if name != "proxy" else "stopsignal=QUIT",
            f"stopwaitsecs={math.ceil(drain_s) + 5}",
            f"stdout_logfile={run_dir / 'logs' / name}.log",
            "redirect_stderr=true",
            "stdout_logfile_maxbytes=20MB",
        ]
    return "\n".join(sections) + "\n"
