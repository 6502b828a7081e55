# syntax=docker/dockerfile:1
#
# One image for all three flowstream services; the command picks the service:
#
#   python -m flowstream_gateway   HTTP API on FLOWSTREAM_GATEWAY_PORT (8080)
#   python -m flowstream_engine    /healthz /readyz /metrics on FLOWSTREAM_ENGINE_PORT (8081)
#   python -m flowstream_history   /healthz /readyz /metrics on FLOWSTREAM_HISTORY_PORT (8082)
#
# No HEALTHCHECK: compose and Kubernetes probe /healthz and /readyz themselves.
# Build from the repository root:  docker build -t flowstream:local .

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
# build: resolve the locked workspace into /app/.venv
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ARG UV_VERSION=0.13.8
RUN pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
        "uv==${UV_VERSION}"

# Use the image's Python (never a downloaded one), compile bytecode at build time (the runtime
# file system is read-only), and copy files out of the cache rather than hard-linking them.
ENV UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /app

# Third-party dependencies first: this layer is rebuilt only when the lock or a pyproject changes.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/pyproject.toml
COPY services/engine/pyproject.toml services/engine/pyproject.toml
COPY services/gateway/pyproject.toml services/gateway/pyproject.toml
COPY services/history/pyproject.toml services/history/pyproject.toml
COPY launcher/pyproject.toml launcher/pyproject.toml
COPY clients/python/pyproject.toml clients/python/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --all-packages --no-dev --no-install-workspace

# Then the workspace packages. --no-editable installs them into site-packages as ordinary wheels,
# so the runtime stage needs the virtual environment and nothing else from the source tree.
COPY shared/ shared/
COPY services/ services/
COPY launcher/ launcher/
COPY clients/python/ clients/python/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --all-packages --no-dev --no-editable

# ---------------------------------------------------------------------------------------------
# runtime: the same base image (the venv's interpreter link points at /usr/local/bin/python3.11)
# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="flowstream" \
      org.opencontainers.image.description="flowstream gateway, engine and history services" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric user, so Kubernetes can verify runAsNonRoot without a name lookup.
RUN groupadd --system --gid 10001 flowstream \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin flowstream \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/flowstream

# Services bind 127.0.0.1 by default; in a container they must listen on every interface.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLOWSTREAM_GATEWAY_HOST=0.0.0.0 \
    FLOWSTREAM_ENGINE_HOST=0.0.0.0 \
    FLOWSTREAM_HISTORY_HOST=0.0.0.0 \
    FLOWSTREAM_DATA_DIR=/var/lib/flowstream

WORKDIR /app
# Owned by root and read-only for the service user: the code cannot be changed at run time.
COPY --from=build /app/.venv /app/.venv

USER 10001:10001
EXPOSE 8080 8081 8082
CMD ["python", "-m", "flowstream_gateway"]
