"""Render the proxy's nginx config for the local stack, the way the nginx image's envsubst does in containers.

    python proxy/render.py --prefix run/proxy     # writes run/proxy/conf/{nginx.conf,conf.d/,snippets/}

Settings come from PROXY_* / *_UPSTREAM environment variables (defaults below). Prints the config path.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

DEFAULTS = {
    "PROXY_HTTPS_PORT": "8443",
    "PROXY_MAX_BODY": "8m",
    "PROXY_MAX_IMAGE_BODY": "32m",
    "PROXY_AUTH_CACHE_TTL": "5s",
    "PROXY_CLIENT_HEADER_TIMEOUT": "15s",
    "PROXY_CLIENT_BODY_TIMEOUT": "30s",
    "PROXY_CORS_ORIGIN_REGEX": r"^https?://(localhost|127\.0\.0\.1)(:[0-9]+)?$",
    "PROXY_RESOLVER": "127.0.0.11",
    "CHAT_UPSTREAM": "127.0.0.1:8000",
    "EMBEDDINGS_UPSTREAM": "127.0.0.1:8001",
    "REGISTRY_UPSTREAM": "127.0.0.1:8002",
}
_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def substitute(text: str, values: dict[str, str]) -> str:
    """envsubst semantics restricted to known names, so nginx's own $variables are left alone."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template variable {name} has no value")
        return values[name]

    return _VAR.sub(replace, text)


def render(prefix: Path) -> Path:
    prefix = prefix.resolve()
    conf = prefix / "conf"
    for sub in ("conf.d", "snippets"):
        (conf / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi", "auth_cache"):
        (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    tls = prefix.parent / "tls"
    values = {key: os.environ.get(key, default) for key, default in DEFAULTS.items()}
    values.update(
        PROXY_PREFIX=str(prefix),
        PROXY_CACHE_DIR=str(prefix / "tmp" / "auth_cache"),
        PROXY_ACCESS_LOG=os.environ.get("PROXY_ACCESS_LOG", str(prefix / "access.log")),
        PROXY_TLS_CERT=os.environ.get("PROXY_TLS_CERT", str(tls / "server.pem")),
        PROXY_TLS_KEY=os.environ.get("PROXY_TLS_KEY", str(tls / "server.key")),
        # As root, workers would run as nobody and could not reach the prefix's temp files (large bodies fail).
        PROXY_USER_DIRECTIVE="user root root;" if os.geteuid() == 0 else "",
    )
    (conf / "nginx.conf").write_text(substitute((HERE / "nginx.local.conf.template").read_text(), values))
    template = (HERE / "templates" / "ortserve.conf.template").read_text()
    (conf / "conf.d" / "ortserve.conf").write_text(substitute(template, values))
    for snippet in (HERE / "snippets").glob("*.conf"):
        shutil.copy(snippet, conf / "snippets" / snippet.name)
    return conf / "nginx.conf"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=Path, required=True, help="folder for config, temp files, pid and logs")
    args = parser.parse_args()
    sys.stdout.write(f"{render(args.prefix)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
