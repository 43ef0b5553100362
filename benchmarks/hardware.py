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



def accelerator(device: str | torch.device) -> dict:
    """The device and the stack that runs on it, beside ``provenance``'s run block: device name, CUDA, cuDNN, and
    whether xformers' kernels run with this torch (None when it does not import)."""
    from mum.layers.attention import backend_works, xformers_available

    dev = torch.device(device)
    return {
        "device": device_name(dev),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None,
        "xformers_kernels_run": (dev.type == "cuda" and backend_works("xformers", "cuda", torch.bfloat16))
        if xformers_available() else None,
    }
