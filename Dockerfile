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
# The image runs as the unprivileged user 10001 and works with a read-only root file system.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: build the project's wheel and wheels of all its dependencies ---------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scrapejobs_exporter ./scrapejobs_exporter
RUN pip wheel --wheel-dir /wheels .

# --- final: install the wheels into a virtual environment ----------------------------------
FROM ${PYTHON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/wheels scrapejobs-exporter \
    && groupadd --system --gid 10001 exporter \
    && useradd --system --uid 10001 --gid exporter --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin exporter \
    && mkdir -p /etc/scrapejobs-exporter

LABEL org.opencontainers.image.title="scrapejobs-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Bright Data and Aitronos scraping jobs" \
      org.opencontainers.image.licenses="Apache-2.0"

USER 10001:10001
EXPOSE 9842
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9842/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["scrapejobs-exporter"]
CMD ["run", "--config", "/etc/scrapejobs-exporter/config.yaml"]
