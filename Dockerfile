# syntax=docker/dockerfile:1
# Morket: two images from one Dockerfile.
#   production (the default target): web | worker | scheduler | migrate, from requirements.txt;
#       no browser and no development server.
#   scrape-worker (docker build --target scrape-worker): the same app plus Playwright, proxy.py
#       and Debian's Chromium, from requirements-scrape.txt; runs scrape-worker.
# The first argument picks the process (docker/entrypoint.sh).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- wheels: every locked requirement built once, no compilers in the images --------------
FROM ${PYTHON_IMAGE} AS wheels
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt requirements-scrape.txt ./
RUN pip wheel --wheel-dir /wheels/production -r requirements.txt \
    && pip wheel --wheel-dir /wheels/scrape -r requirements-scrape.txt

# -- base: Python, tini and a non-root user, shared by both images -------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MORKET_ENV=production \
    PORT=8000

# Debian's packages are not pinned: the bookworm suite only moves for security fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 morket \
    && useradd --system --uid 10001 --gid morket --home-dir /app --shell /usr/sbin/nologin morket
WORKDIR /app

# -- scrape-worker: Playwright drives Debian's Chromium ------------------------------------
FROM base AS scrape-worker
ENV MORKET_CHROMIUM_PATH=/usr/bin/chromium

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-liberation \
    && rm -rf /var/lib/apt/lists/*

COPY requirements-scrape.txt /tmp/requirements-scrape.txt
RUN --mount=type=bind,from=wheels,source=/wheels/scrape,target=/wheels \
    pip install --no-index --find-links=/wheels -r /tmp/requirements-scrape.txt \
    && rm /tmp/requirements-scrape.txt

COPY --chown=root:root . /app
RUN chmod 0755 /app/docker/entrypoint.sh

USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/docker/entrypoint.sh", "healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "/app/docker/entrypoint.sh"]
CMD ["scrape-worker"]

# -- production: web, worker, scheduler, migrate (the last stage: docker build's default) --
FROM base AS production

COPY requirements.txt /tmp/requirements.txt
RUN --mount=type=bind,from=wheels,source=/wheels/production,target=/wheels \
    pip install --no-index --find-links=/wheels -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY --chown=root:root . /app
RUN chmod 0755 /app/docker/entrypoint.sh

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/docker/entrypoint.sh", "healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "/app/docker/entrypoint.sh"]
CMD ["web"]
