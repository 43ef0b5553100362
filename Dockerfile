# mum-web on a GPU server: CUDA PyTorch + the xformers built for it, the project, the web app as entrypoint.
#   docker build -t mum-web .
#   docker run --gpus '"device=0"' -p 7860:7860 -v "$PWD/weights:/weights:ro" \
#     -e MUM_MODEL=mum-vitl16 -e MUM_WEIGHTS=/weights/mum-vitl16.safetensors mum-web
# One container per GPU: see docker-compose.yml and docs/web.md.
#
# The stack: CUDA 12.8 (base image and PyTorch's cu128 wheels), torch 2.10.0+cu128, xformers 0.0.35. The xformers
# wheel holds a binary built for exactly one torch (its xformers/cpp_lib.json: torch 2.10.0+cu128, CUDA 12.8); with
# any other torch it imports but its attention kernel raises. So torch is pinned to that build, and the build
# fails (scripts/check_torch_xformers.py, reading `python -m xformers.info`) when the installed pair disagrees.
# Changing one pin means changing the others: tests/test_docker.py checks them against KNOWN_PAIRS in that script.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ARG TORCH_VERSION=2.10.0
ARG XFORMERS_VERSION=0.0.35
ARG CUDA_VERSION=12.8
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# python, and the system libraries of open3d (libusb, OpenMP) and OpenCV (glib)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-dev ca-certificates libusb-1.0-0 libgomp1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv "$VIRTUAL_ENV"

# CUDA PyTorch first (before anything can pull a CPU torch), then the xformers built for it without its
# dependencies (it must not replace torch); the build stops here if the pair disagrees
WORKDIR /app
COPY scripts/check_torch_xformers.py ./scripts/
RUN pip install --index-url "$TORCH_INDEX" "torch==${TORCH_VERSION}" \
    && pip install --no-deps "xformers==${XFORMERS_VERSION}" "numpy>=1.26" \
    && python scripts/check_torch_xformers.py --torch "$TORCH_VERSION" --xformers "$XFORMERS_VERSION" --cuda "$CUDA_VERSION"

# the rest, torch left as it is (requirements.txt pins the CPU torch of setup.sh); checked again afterwards
COPY requirements.txt ./
RUN grep -v '^torch==' requirements.txt > /tmp/requirements-gpu.txt \
    && pip install -r /tmp/requirements-gpu.txt \
    && python scripts/check_torch_xformers.py --torch "$TORCH_VERSION" --xformers "$XFORMERS_VERSION" --cuda "$CUDA_VERSION"

COPY pyproject.toml README.md ./
COPY mum ./mum
COPY heads ./heads
COPY app ./app
COPY demo ./demo
RUN pip install --no-deps .

# non-root user; model weights are mounted read-only at /weights
RUN useradd --create-home --uid 10001 --user-group mum \
    && mkdir -p /weights /tmp/gradio \
    && chown mum:mum /tmp/gradio
USER 10001:10001
VOLUME ["/weights"]

ENV HOME=/home/mum \
    MUM_MODEL="" \
    MUM_WEIGHTS="" \
    MUM_DEVICE=auto \
    MUM_WEB_PORT=7860 \
    GRADIO_TEMP_DIR=/tmp/gradio \
    GRADIO_ANALYTICS_ENABLED=False \
    MPLCONFIGDIR=/tmp/matplotlib
EXPOSE 7860

# healthy = the server answers AND a tiny reconstruction (3 views) runs through MUM_MODEL/MUM_WEIGHTS on
# MUM_DEVICE with the attention backend this stack verifies (mum-web --self-check: one line, non-zero on failure)
HEALTHCHECK --interval=5m --timeout=2m --start-period=5m --retries=2 \
    CMD ["sh", "-c", "python -c \"import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('MUM_WEB_PORT', '7860'), timeout=8)\" && mum-web --self-check"]

ENTRYPOINT ["mum-web", "--host", "0.0.0.0"]
CMD ["--preload"]
