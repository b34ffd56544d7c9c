# syntax=docker/dockerfile:1.7
# A CUDA inference worker (worker protocol v1 on :8001), one per GPU. Needs the NVIDIA container toolkit on the
# host (`docker run --gpus 1`, or the Kubernetes device plugin's nvidia.com/gpu).
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t ablerefusal-worker-cuda .
# The base is CUDA's minimal "base" flavour: torch's CUDA wheels bring their own CUDA and cuDNN libraries, so a
# "runtime" or "devel" base would only add gigabytes. Ubuntu 24.04 ships Python 3.12 (we need >= 3.11).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04@sha256:133c78a0575303be34164d0b90137a042172bdf60696af01a3c424ab402d86e2

# --- 1. the Python environment: CUDA torch, then the package with its inference extra ---------------------------
FROM ${CUDA_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ABLEREFUSAL_WHEEL_WITHOUT_UI=1
# The distribution release is pinned by the base image's digest; pinning each package's exact version as
# well breaks the build whenever Ubuntu publishes a security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md hatch_build.py ./
COPY src/ src/
RUN /opt/venv/bin/pip install ".[inference]"

# --- 2. runtime, as a non-root user ------------------------------------------------------------------------------
FROM ${CUDA_IMAGE}
LABEL org.opencontainers.image.title="ablerefusal-worker-cuda" \
      org.opencontainers.image.description="AbleRefusal inference worker (NVIDIA CUDA)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV DEBIAN_FRONTEND=noninteractive
# Same reason as above for unpinned package versions; the venv needs the same Python the build stage used.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ablerefusal \
    && useradd --system --uid 10001 --gid ablerefusal --home-dir /app --no-create-home ablerefusal \
    && mkdir -p /app/models /app/cache \
    && chown -R ablerefusal:ablerefusal /app
COPY --from=build /opt/venv /opt/venv
# Listening beyond loopback needs a token: set ABLEREFUSAL_WORKER_TOKEN (the gateway's workers.token).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/app/cache/huggingface \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    ABLEREFUSAL_WORKER_HOST=0.0.0.0 \
    ABLEREFUSAL_WORKER_PORT=8001 \
    ABLEREFUSAL_WORKER_DEVICE=cuda \
    ABLEREFUSAL_WORKER_MODELS_DIR=/app/models
WORKDIR /app
USER 10001:10001
EXPOSE 8001
# Model loading happens lazily, so the process answers /v1/health quickly; the generous start period covers
# CUDA initialisation on a cold GPU.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8001/v1/health', timeout=4)"]
ENTRYPOINT ["ablerefusal"]
CMD ["worker"]
