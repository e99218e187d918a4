# syntax=docker/dockerfile:1.7
#
# One Dockerfile for every Photogram service: pick the service with --target.
#
#   docker build --target gateway -t photogram/gateway .
#   docker build --target user-service -t photogram/user-service .
#   (post-service, media-service, feed-service, fanout-worker, notification-service alike)
#
# Each target installs only its own workspace package and its locked dependencies
# (`uv sync --frozen --package ...`) into /app/.venv in a builder stage, then copies
# that virtualenv into a slim runtime that runs as uid 10001. The CMD of each target
# is the service's container command; docker-compose.yml and k8s/ use it as is, and
# tests/deploy/test_container_commands.py reads it from here.
# Migrations run the same image with `migrate` appended to the command.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------- build stages
FROM ${PYTHON_IMAGE} AS build-base
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Only the lock and the manifests first, so the dependency layers stay cached until
# the lock file changes.
COPY pyproject.toml uv.lock ./
COPY contracts/pyproject.toml contracts/
COPY common/pyproject.toml common/
COPY gateway/pyproject.toml gateway/
COPY user-service/pyproject.toml user-service/
COPY post-service/pyproject.toml post-service/
COPY media-service/pyproject.toml media-service/
COPY feed-service/pyproject.toml feed-service/
COPY fanout-worker/pyproject.toml fanout-worker/
COPY notification-service/pyproject.toml notification-service/
COPY runner/pyproject.toml runner/

FROM build-base AS build-gateway
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package photogram-gateway
COPY contracts contracts
COPY common common
COPY gateway gateway
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package photogram-gateway

FROM build-base AS build-user-service
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package photogram-user-service
COPY contracts contracts
COPY common common
COPY user-service user-service
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package photogram-user-service

FROM build-base AS build-post-service
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package photogram-post-service
COPY contracts contracts
COPY common common
COPY post-service post-service
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package photogram-post-service

FROM build-base AS build-media-service
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package photogram-media-service
COPY contracts contracts
COPY common common
COPY media-service media-service
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package photogram-media-service

FROM build-base AS build-feed-service
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package photogram-feed-service
COPY contracts contracts
COPY common common
COPY feed-service feed-service
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package photogram-feed-service

FROM build-base AS build-fanout-worker
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package photogram-fanout-worker
COPY contracts contracts
COPY common common
COPY fanout-worker fanout-worker
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package photogram-fanout-worker

FROM build-base AS build-notification-service
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package photogram-notification-service
COPY contracts contracts
COPY common common
COPY notification-service notification-service
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package photogram-notification-service

# --------------------------------------------------------------- runtime base
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 photogram \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin photogram
# The virtualenv stays owned by root: the service can read it, never change it, so the
# root filesystem can be mounted read-only.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PHOTOGRAM_MODE=distributed
WORKDIR /app
USER 10001:10001
STOPSIGNAL SIGTERM

# ------------------------------------------------------------ service targets
# The healthcheck asks the service's own /readyz (200 once its dependencies answer) on the
# port its settings read: compose gates the start order on it. Kubernetes probes
# /healthz and /readyz separately (k8s/base).

FROM runtime AS gateway
COPY --from=build-gateway /app/.venv /app/.venv
ENV PHOTOGRAM_GATEWAY_HOST=0.0.0.0 PHOTOGRAM_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PHOTOGRAM_PORT'], timeout=2)"]
CMD ["python", "-m", "gateway"]

FROM runtime AS user-service
COPY --from=build-user-service /app/.venv /app/.venv
ENV PHOTOGRAM_USERS_HOST=0.0.0.0 PHOTOGRAM_USERS_PORT=8101
EXPOSE 8101
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PHOTOGRAM_USERS_PORT'], timeout=2)"]
CMD ["python", "-m", "user_service"]

FROM runtime AS post-service
COPY --from=build-post-service /app/.venv /app/.venv
ENV PHOTOGRAM_POSTS_HOST=0.0.0.0 PHOTOGRAM_POSTS_PORT=8102
EXPOSE 8102
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PHOTOGRAM_POSTS_PORT'], timeout=2)"]
CMD ["python", "-m", "post_service"]

FROM runtime AS media-service
COPY --from=build-media-service /app/.venv /app/.venv
ENV PHOTOGRAM_MEDIA_HOST=0.0.0.0 PHOTOGRAM_MEDIA_PORT=8103
EXPOSE 8103
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PHOTOGRAM_MEDIA_PORT'], timeout=2)"]
CMD ["python", "-m", "media_service"]

FROM runtime AS feed-service
COPY --from=build-feed-service /app/.venv /app/.venv
ENV PHOTOGRAM_FEED_HOST=0.0.0.0 PHOTOGRAM_FEED_PORT=8104
EXPOSE 8104
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PHOTOGRAM_FEED_PORT'], timeout=2)"]
CMD ["python", "-m", "feed_service"]

FROM runtime AS fanout-worker
COPY --from=build-fanout-worker /app/.venv /app/.venv
ENV PHOTOGRAM_FANOUT_HOST=0.0.0.0 PHOTOGRAM_FANOUT_PORT=8105
EXPOSE 8105
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PHOTOGRAM_FANOUT_PORT'], timeout=2)"]
CMD ["python", "-m", "fanout_worker"]

FROM runtime AS notification-service
COPY --from=build-notification-service /app/.venv /app/.venv
ENV PHOTOGRAM_NOTIFICATIONS_HOST=0.0.0.0 PHOTOGRAM_NOTIFICATIONS_PORT=8106
EXPOSE 8106
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ['PHOTOGRAM_NOTIFICATIONS_PORT'], timeout=2)"]
CMD ["python", "-m", "notification_service"]
