# syntax=docker/dockerfile:1
#
# scrapejobs-exporter container image.
#
#   docker build -t scrapejobs-exporter .
#   docker run -p 9842:9842 \
#     -v "$PWD/config.yaml:/etc/scrapejobs-exporter/config.yaml:ro" \
#     -v "$PWD/secrets:/run/secrets:ro" scrapejobs-exporter
#
# Mounts:
#   /etc/scrapejobs-exporter/config.yaml  the configuration (CMD below reads it)
#   /run/secrets/                         API credentials, referenced from the config as
#                                         brightdata.api_token_file / aitronos.api_key_file
#   /var/lib/scrapejobs-exporter/         a volume for `state_file:` (owned by the exporter
#                                         user, so a named volume mounted here is writable)
# The image runs as the unprivileged user 10001 and works with a read-only root file system.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: build the project's wheel and wheels of all its dependencies ---------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
# The package's monitoring/ links to these (dashboards, rules, rule tests, runbooks): the
# wheel carries them for `scrapejobs-exporter assets`.
COPY grafana/dashboards ./grafana/dashboards
COPY prometheus/rules ./prometheus/rules
COPY prometheus/tests ./prometheus/tests
COPY docs/runbooks.md ./docs/runbooks.md
COPY scrapejobs_exporter ./scrapejobs_exporter
# constraints.txt pins every runtime dependency (scripts/constraints.py): two builds of one
# commit install the same versions.
RUN pip wheel --constraint constraints.txt --wheel-dir /wheels . \
    && cp constraints.txt /wheels/

# --- final: install the wheels into a virtual environment ----------------------------------
FROM ${PYTHON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/wheels \
        --constraint /wheels/constraints.txt scrapejobs-exporter \
    && groupadd --system --gid 10001 exporter \
    && useradd --system --uid 10001 --gid exporter --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin exporter \
    && mkdir -p /etc/scrapejobs-exporter /var/lib/scrapejobs-exporter \
    && chown exporter:exporter /var/lib/scrapejobs-exporter

LABEL org.opencontainers.image.title="scrapejobs-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Bright Data and Aitronos scraping jobs" \
      org.opencontainers.image.licenses="Apache-2.0"

USER 10001:10001
EXPOSE 9842
# Probes /-/healthy on the address and scheme (http, or https with --web.config.file) that
# the exporter (PID 1) was started with: a changed CMD needs no change here.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["scrapejobs-exporter", "healthcheck", "--timeout", "4s"]
ENTRYPOINT ["scrapejobs-exporter"]
CMD ["run", "--config", "/etc/scrapejobs-exporter/config.yaml"]
