"""CUDA checks (marked ``gpu``: skipped by default, run with ``--runslow`` on a machine with a GPU).

Every backend that runs must give the numbers of the others (xformers = SDPA = cuDNN, on the attention function
and through the whole model); the CUDA model must agree with the CPU model in float32; ``auto`` must run even
with an xformers that imports but cannot run (a wheel built for another torch): one warning, then SDPA. Tests
that compare xformers with SDPA skip when xformers' kernels do not run here, every other test passes through
the fallback. The memory tests bound what ``predict`` keeps on the GPU."""

from __future__ import annotations

import importlib

import pytest
import torch

from mum.layers.attention import backend_works, xformers_available

A = importlib.import_module("mum.layers.attention")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
needs_xformers = pytest.mark.skipif(not (torch.cuda.is_available() and backend_works("xformers")),
                                    reason="needs CUDA + an xformers whose kernels run with this torch")
pytestmark = [pytest.mark.gpu]


def _model(device: str, preset: str = "mum-tiny"):
    from heads.registry import load_model

    torch.manual_seed(0)
    return load_model(preset, device=device).eval()


def _images(device: str, frames: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(frames, 3, 96, 128, generator=g).to(device)


@needs_cuda
def test_auto_runs_and_says_so_once_when_xformers_is_broken(monkeypatch):
    """Whatever xformers is installed: ``auto`` picks a backend that runs; a broken xformers is one warning."""
    lines: list[str] = []
    A.clear_backend_cache()
    monkeypatch.setattr(A, "warn", lines.append)
    monkeypatch.delenv("MUM_ATTENTION", raising=False)
    model, x = _model("cuda"), _images("cuda")
    pred = model.predict(x)
    assert torch.isfinite(pred.depth).all()
    chosen = set(A.chosen_backends().values())
    broken = xformers_available() and not backend_works("xformers")
    if broken:
        assert "xformers" not in chosen and len(lines) == 1 and "xformers" in lines[0], (chosen, lines)
    else:
        assert lines == [], lines
    print(f"auto chose {sorted(chosen)}; xformers installed {xformers_available()}, broken {broken}")
    A.clear_backend_cache()


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_working_backend_matches_math(dtype):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 8, 300, 48, generator=g).to("cuda", dtype) for _ in range(3))
    ref = A.math_attention(q.float(), k.float(), v.float())
    tol = 2e-5 if dtype == torch.float32 else 2e-2
    ran = []
    for backend in ("xformers", "cudnn", "sdpa"):
        if backend_works(backend, "cuda", dtype, 48):
            torch.testing.assert_close(A.attention(q, k, v, backend=backend).float(), ref, atol=tol, rtol=tol)
            ran.append(backend)
    assert "sdpa" in ran


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


@pytest.mark.parametrize("backend", ["xformers", "cudnn"])
@needs_cuda
def test_predict_bf16_backend_close_to_sdpa(monkeypatch, backend):
    if not backend_works(backend, "cuda", torch.bfloat16):
        pytest.skip(f"{backend} attention does not run here")
    model, x = _model("cuda"), _images("cuda")
    preds = {}
    for name in (backend, "sdpa"):
        monkeypatch.setenv("MUM_ATTENTION", name)
        preds[name] = model.predict(x)
    a, b = preds[backend], preds["sdpa"]
    rel = ((a.depth - b.depth).abs() / b.depth.abs().clamp_min(1e-6)).median()
    assert rel < 1e-2, f"median relative depth difference {rel:.3g} between {backend} and SDPA under bf16"
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


@needs_cuda
def test_outputs_gathered_on_the_cpu_leave_the_gpu_and_agree():
    """``predict(output_device="cpu")`` from frames on the CPU: the same numbers, less GPU memory at its peak (the
    dense maps and the frames never all sit on the GPU)."""
    model = _model("cuda")
    x = torch.rand(48, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    peaks, preds = {}, {}
    for where in ("cuda", "cpu"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        preds[where] = model.predict(x if where == "cpu" else x.cuda(), chunk_size=4, output_device=where)
        torch.cuda.synchronize()
        peaks[where] = torch.cuda.max_memory_allocated() - base
    assert preds["cpu"].depth.device.type == "cpu" and preds["cuda"].depth.is_cuda
    torch.testing.assert_close(preds["cpu"].depth, preds["cuda"].depth.cpu())
    maps = sum(t.numel() * t.element_size() for t in (preds["cuda"].depth, preds["cuda"].depth_conf,
                                                       preds["cuda"].world_points, preds["cuda"].world_points_conf))
    assert peaks["cuda"] - peaks["cpu"] > 0.5 * maps, (peaks, maps)


@needs_cuda
def test_compiled_predict_matches_eager_on_cuda():
    model, x = _model("cuda"), _images("cuda")
    ref = model.predict(x)
    seconds = model.compile_for_inference()
    out = model.predict(x)
    assert seconds > 0
    rel = ((out.depth - ref.depth).abs() / ref.depth.abs().clamp_min(1e-6)).median()
    assert rel < 1e-2, f"median relative depth difference {rel:.3g} compiled vs eager (bf16)"


@needs_cuda
def test_fused_adamw_on_cuda_only():
    from mum.training.config import OptimConfig
    from mum.training.optim import build_optimizer

    cuda = build_optimizer([{"params": [torch.nn.Parameter(torch.zeros(4, device="cuda"))], "lr": 1e-3}], OptimConfig())
    cpu = build_optimizer([{"params": [torch.nn.Parameter(torch.zeros(4))], "lr": 1e-3}], OptimConfig())
    assert cuda.defaults["fused"] is True and not cpu.defaults["fused"]
