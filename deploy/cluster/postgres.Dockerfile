# PostgreSQL from Debian's package, for the conversations and prompt templates that every chat replica shares when
# the replicas run on several hosts (SQLite's file locks hold within one kernel only). Built where no registry
# answers; a site with one can use the public postgres image instead. docker build -f deploy/cluster/postgres.Dockerfile .
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15=15.* \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /run/postgresql \
    && chown postgres:postgres /var/lib/postgresql/data /run/postgresql
COPY deploy/cluster/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
VOLUME ["/var/lib/postgresql/data"]
USER postgres
EXPOSE 5432
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 \
    CMD ["/usr/lib/postgresql/15/bin/pg_isready", "-h", "127.0.0.1", "-q"]
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
