# syntax=docker/dockerfile:1
# Morket: one image, five roles. The first argument picks the process:
#   web | worker | scrape-worker | scheduler | migrate
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- builder: every locked requirement as a wheel -----------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt .
RUN pip wheel --wheel-dir /wheels -r requirements.txt \
    && cp requirements.txt /wheels/requirements.txt

# -- runtime: no compilers, a non-root user, Debian's Chromium for the scrape worker ------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MORKET_ENV=production \
    MORKET_CHROMIUM_PATH=/usr/bin/chromium \
    PORT=8000

# Debian's packages are not pinned: the bookworm suite only moves for security fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-liberation tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 morket \
    && useradd --system --uid 10001 --gid morket --home-dir /app --shell /usr/sbin/nologin morket

WORKDIR /app
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels -r /wheels/requirements.txt

COPY --chown=root:root . /app
RUN chmod 0755 /app/docker/entrypoint.sh

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/docker/entrypoint.sh", "healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "/app/docker/entrypoint.sh"]
CMD ["web"]
