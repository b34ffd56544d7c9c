# syntax=docker/dockerfile:1.7
# A CPU inference worker (worker protocol v1 on :8001): for trying the platform without a GPU, or for CI.
#   docker build -f deploy/docker/worker-cpu.Dockerfile -t ablerefusal-worker-cpu .
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5

# --- 1. the Python environment: CPU torch, then the package with its inference extra ----------------------------
FROM ${PYTHON_IMAGE} AS build
# The torch the Makefile pins; PyPI's default torch wheel drags in several GB of CUDA libraries.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ABLEREFUSAL_WHEEL_WITHOUT_UI=1
WORKDIR /src
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md hatch_build.py ./
COPY src/ src/
RUN /opt/venv/bin/pip install ".[inference]"

# --- 2. runtime, as a non-root user ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ablerefusal-worker-cpu" \
      org.opencontainers.image.description="AbleRefusal inference worker (CPU)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 ablerefusal \
    && useradd --system --uid 10001 --gid ablerefusal --home-dir /app --no-create-home ablerefusal \
    && mkdir -p /app/models /app/cache \
    && chown -R ablerefusal:ablerefusal /app
COPY --from=build /opt/venv /opt/venv
# Listening beyond loopback needs a token: set ABLEREFUSAL_WORKER_TOKEN (the gateway's workers.token).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/app/cache/huggingface \
    ABLEREFUSAL_WORKER_HOST=0.0.0.0 \
    ABLEREFUSAL_WORKER_PORT=8001 \
    ABLEREFUSAL_WORKER_DEVICE=cpu \
    ABLEREFUSAL_WORKER_MODELS_DIR=/app/models
WORKDIR /app
USER 10001:10001
EXPOSE 8001
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8001/v1/health', timeout=4)"]
ENTRYPOINT ["ablerefusal"]
CMD ["worker"]
