# syntax=docker/dockerfile:1.7
# The gateway: REST API, queue, dispatcher and web UI. No torch, no GPU. Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t ablerefusal-gateway .
# Base images are pinned by tag and digest, so a rebuild gets the same bases (see docs/deploy.md to bump them).
ARG NODE_IMAGE=node:22.12.0-bookworm-slim@sha256:35531c52ce27b6575d69755c73e65d4468dba93a25644eed56dc12879cae9213
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5

# --- 1. the web UI: a static Next.js export ---------------------------------------------------------------------
FROM ${NODE_IMAGE} AS ui
WORKDIR /web
# Lock file first: the dependency layer is reused until package-lock.json changes.
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# --- 2. the Python environment: the wheel (which carries the UI) in a virtualenv --------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md hatch_build.py ./
COPY src/ src/
# hatch_build.py packs web/out into the wheel as ablerefusal/gateway/web_ui.
COPY --from=ui /web/out web/out
RUN /opt/venv/bin/pip install .

# --- 3. runtime: the virtualenv on a slim Python, as a non-root user ---------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ablerefusal-gateway" \
      org.opencontainers.image.description="AbleRefusal gateway: API, job queue, web UI" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 ablerefusal \
    && useradd --system --uid 10001 --gid ablerefusal --home-dir /app --no-create-home ablerefusal \
    && mkdir -p /app/data /app/outputs /app/models \
    && chown -R ablerefusal:ablerefusal /app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ABLEREFUSAL_SERVER__HOST=0.0.0.0 \
    ABLEREFUSAL_SERVER__PORT=8080 \
    ABLEREFUSAL_WORKERS__LOCAL=0 \
    ABLEREFUSAL_STORAGE__OUTPUT_DIR=/app/outputs \
    ABLEREFUSAL_STORAGE__MODELS_DIR=/app/models \
    ABLEREFUSAL_STORAGE__DATABASE_URL=sqlite:////app/data/ablerefusal.db
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# Liveness only (the process answers); readiness (/api/v1/ready) also needs a worker, which is the
# orchestrator's business, not a reason to restart the gateway.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/api/v1/health', timeout=4)"]
ENTRYPOINT ["ablerefusal"]
CMD ["serve"]
