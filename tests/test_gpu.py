"""CUDA checks (marked ``gpu``: skipped by default, run with ``--runslow`` on a machine with a GPU).

xformers and SDPA must give the same numbers, on the attention function and through the whole model, and the
CUDA model must agree with the CPU model in float32."""

from __future__ import annotations

import pytest
import torch

from mum.layers import xformers_available

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
needs_xformers = pytest.mark.skipif(not (torch.cuda.is_available() and xformers_available()), reason="needs CUDA + xformers")
pytestmark = [pytest.mark.gpu]


def _model(device: str):
    from heads.registry import load_model

    torch.manual_seed(0)
    return load_model("mum-tiny", device=device).eval()


def _images(device: str, frames: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(frames, 3, 96, 128, generator=g).to(device)


@needs_xformers
def test_model_forward_xformers_equals_sdpa_fp32(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    model, x = _model("cuda"), _images("cuda")
    outs = {}
    for backend in ("xformers", "sdpa"):
        monkeypatch.setenv("MUM_ATTENTION", backend)
        with torch.no_grad():
            outs[backend] = model(x[None])
    for key in ("pose_enc", "depth", "world_points", "depth_conf"):
        torch.testing.assert_close(outs["xformers"][key], outs["sdpa"][key], atol=1e-4, rtol=1e-4)


@needs_xformers
def test_predict_bf16_xformers_close_to_sdpa(monkeypatch):
    model, x = _model("cuda"), _images("cuda")
    preds = {}
    for backend in ("xformers", "sdpa"):
        monkeypatch.setenv("MUM_ATTENTION", backend)
        preds[backend] = model.predict(x)
    a, b = preds["xformers"], preds["sdpa"]
    rel = ((a.depth - b.depth).abs() / b.depth.abs().clamp_min(1e-6)).median()
    assert rel < 1e-2, f"median relative depth difference {rel:.3g} between xformers and SDPA under bf16"
    torch.testing.assert_close(a.pose_enc, b.pose_enc, atol=3e-2, rtol=3e-2)


@needs_cuda
def test_cuda_fp32_matches_cpu(monkeypatch):
    monkeypatch.setenv("MUM_ATTENTION", "sdpa")
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    cpu, gpu = _model("cpu"), _model("cuda")
    gpu.load_state_dict(cpu.state_dict())
    x = _images("cpu")
    with torch.no_grad():
        ref, out = cpu(x[None]), gpu(x.cuda()[None])
    for key in ("pose_enc", "depth", "world_points"):
        torch.testing.assert_close(out[key].cpu(), ref[key], atol=1e-4, rtol=1e-4)


@needs_cuda
def test_predict_memory_is_linear_in_frames():
    """Peak CUDA memory above the weights for 8, 16 and 32 frames lies on a line (chunked encoder and heads)."""
    model = _model("cuda")
    peaks = []
    for n in (8, 16, 32):
        x = torch.rand(n, 3, 224, 224, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        model.predict(x, chunk_size=4)
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated() - base)
    second = (peaks[2] - peaks[1]) / 16
    first = (peaks[1] - peaks[0]) / 8
    assert 0.5 < second / first < 1.5, f"memory per frame {first / 2**20:.1f} MiB then {second / 2**20:.1f} MiB"
