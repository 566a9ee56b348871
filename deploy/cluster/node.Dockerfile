# A Docker Swarm node as a container (make cluster-up): Debian's engine inside, since docker:dind cannot be pulled
# where no registry answers. Build from the repository root: docker build -f deploy/cluster/node.Dockerfile .
# It runs with SYS_ADMIN and NET_ADMIN and the host's cgroup tree, not --privileged (tools/cluster.py says why).
ARG BASE_IMAGE=ortserve-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io=20.10.* iptables=1.8.* iproute2=6.1.* \
    && rm -rf /var/lib/apt/lists/*
# The inner engine's images and containers: an anonymous volume, so overlay2 does not stack on overlay2.
VOLUME ["/var/lib/docker"]
CMD ["dockerd", "--host=unix:///var/run/docker.sock", "--storage-driver=overlay2"]
