#!/usr/bin/env bash
# images.sh: build every ortserve image into the local engine (make images), one after the other so that chat and
# embeddings share their pip layer, and tag them ortserve-<name>:${ORTSERVE_TAG:-latest} (the compose file's names).
#
# Bases: ORTSERVE_BASE=public uses the public images (python:3.11-slim, nginx-unprivileged, debian:bookworm-slim),
# ORTSERVE_BASE=local the Debian base that base-image.sh builds from Debian's packages, and auto (the default) the
# public ones when a registry answers, the local one otherwise. PYTHON_BASE_IMAGE, NGINX_BASE_IMAGE and
# DEBIAN_BASE_IMAGE override each one. Unchanged images are rebuilt from the engine's cache in seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."

tag=${ORTSERVE_TAG:-latest}
mode=${ORTSERVE_BASE:-auto}
local_base=${ORTSERVE_LOCAL_BASE:-ortserve-base:bookworm}
if [ "$mode" = auto ]; then
  # A pull that fails at once (no DNS, no route) or within the timeout means: no registry here, build offline.
  if docker image inspect python:3.11-slim >/dev/null 2>&1 || timeout 60 docker pull -q python:3.11-slim >/dev/null 2>&1
  then mode=public
  else mode=local; echo ">> no image registry answered: building on the local Debian base"
  fi
fi
case $mode in
  public) python_base=python:3.11-slim nginx_base=nginxinc/nginx-unprivileged:1.27-alpine debian_base=debian:bookworm-slim ;;
  local)
    tools/docker/base-image.sh "$local_base"
    python_base=$local_base nginx_base=$local_base debian_base=$local_base ;;
  *) echo "ORTSERVE_BASE must be auto, public or local (got $mode)" >&2; exit 2 ;;
esac
python_base=${PYTHON_BASE_IMAGE:-$python_base}
nginx_base=${NGINX_BASE_IMAGE:-$nginx_base}
debian_base=${DEBIAN_BASE_IMAGE:-$debian_base}

build() {  # build NAME DOCKERFILE BASE
  local start=$SECONDS
  # Legacy builder on purpose: BuildKit needs buildx, which Debian's engine lacks, and would fetch frontends.
  if ! DOCKER_BUILDKIT=0 docker build -q --force-rm -f "$2" --build-arg "BASE_IMAGE=$3" --label org.ortserve.image="$1" \
      -t "ortserve-$1:$tag" . >"/tmp/ortserve-build-$1.log" 2>&1; then
    tail -30 "/tmp/ortserve-build-$1.log" >&2
    echo "building ortserve-$1 failed (whole log: /tmp/ortserve-build-$1.log)" >&2
    exit 1
  fi
  echo ">> ortserve-$1:$tag on $3 ($((SECONDS - start)) s)"
}
build models services/models/Dockerfile "$python_base"
build chat services/chat/Dockerfile "$python_base"
build embeddings services/embeddings/Dockerfile "$python_base"
build proxy proxy/Dockerfile "$nginx_base"
build prometheus deploy/prometheus/Dockerfile "$debian_base"
build redis deploy/redis/Dockerfile "$debian_base"
# A rebuilt tag leaves its previous image dangling: drop those (only ours; the build cache stays).
docker image prune -f --filter label=org.ortserve.image >/dev/null
