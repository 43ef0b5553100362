"""What the benchmarks need to know about the accelerator: its name and dense bf16 peak (for MFU)."""

from __future__ import annotations

import platform

import torch

# Dense (non-sparse) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0}


def device_name(device: str | torch.device) -> str:
    """``NVIDIA H200`` or ``x86_64 CPU, 2 threads``."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


def peak_bf16_tflops(device: str | torch.device) -> float | None:
    """Dense bf16 peak of a known CUDA device, else None (no MFU on CPU)."""
    if torch.device(device).type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def run_info(device: str | torch.device) -> dict:
    """What a results JSON records about its run: the commit, the command line, the machine and its load, the
    software stack (torch, CUDA, cuDNN, xformers and whether its kernels run) and the date."""
    import datetime
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
            return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    from mum.layers.attention import backend_works, xformers_available

    dev = torch.device(device)
    xformers = None
    if xformers_available():
        works = dev.type == "cuda" and backend_works("xformers", "cuda", torch.bfloat16)
        xformers = {"version": getattr(sys.modules.get("xformers"), "__version__", None), "kernels_run": works}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": None if status is None else bool(status),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device_name(dev),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
        "xformers": xformers,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "cpus": os.cpu_count(),
    }
