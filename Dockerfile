# mum-web on a GPU server: CUDA PyTorch + matching xformers, the project, the web app as entrypoint.
#   docker build -t mum-web .
#   docker run --gpus '"device=0"' -p 7860:7860 -v "$PWD/weights:/weights:ro" \
#     -e MUM_MODEL=mum-vitl16 -e MUM_WEIGHTS=/weights/mum-vitl16.safetensors mum-web
# One container per GPU: see docker-compose.yml and docs/web.md.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ARG TORCH_VERSION=2.13.0
ARG XFORMERS_VERSION=0.0.35
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

# CUDA PyTorch and the xformers build for it, from the same index, before anything can pull a CPU torch
RUN pip install --index-url "$TORCH_INDEX" "torch==${TORCH_VERSION}" "xformers==${XFORMERS_VERSION}"

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt \
    && python -c "import torch, xformers; assert torch.version.cuda, 'CPU torch was installed'"

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

HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('MUM_WEB_PORT', '7860'), timeout=8)"]

ENTRYPOINT ["mum-web", "--host", "0.0.0.0"]
CMD ["--preload"]
