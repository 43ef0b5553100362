"""The one attention function: every backend that runs here agrees with the explicit-softmax reference, the
backend asked for is the one that runs, and a broken xformers (imports, kernel raises) is found out, reported
in one line and replaced (``auto``) or refused (asked for by name)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mum.layers import Attention, attention, math_attention, resolve_backend
from mum.layers.attention import AttentionBackendError, backend_works

A = importlib.import_module("mum.layers.attention")  # the module (mum.layers.attention the attribute is the function)
REPO = Path(__file__).resolve().parents[1]
DEMO = sorted((REPO / "demo" / "tum_freiburg" / "images").glob("*.png"))[:2]
BROKEN_MESSAGE = ("No operator found for `memory_efficient_attention_forward` with inputs: query: shape=(1, 24, 2, 16) "
                  "`cutlassF` is not supported because: xFormers wasn't built with CUDA support")


def write_fake_xformers(root: Path, kernel: str = "raise", build_torch: str | None = "2.10.0+cu128") -> Path:
    """An ``xformers`` package under ``root`` that imports (logging a multi-line warning, as a mismatched build
    does) and whose ``memory_efficient_attention`` raises like xformers 0.0.35 on another torch (``raise``) or
    returns wrong numbers (``wrong``)."""
    pkg = root / "xformers"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "import logging\n__version__ = '0.0.35'\n"
        "logging.getLogger('xformers').warning(\"WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions.\\n"
        "  xFormers was built for: PyTorch 2.10.0+cu128\")\n")
    if build_torch is not None:
        (pkg / "cpp_lib.json").write_text(json.dumps({"version": {"cuda": 1208, "torch": build_torch, "python": "3.10.19"}}))
    body = f"    raise NotImplementedError({BROKEN_MESSAGE!r})\n" if kernel == "raise" else "    return v * 0.5\n"
    (pkg / "ops" / "__init__.py").write_text(f"def memory_efficient_attention(q, k, v, attn_bias=None):\n{body}")
    return root


def _xformers_modules() -> list[str]:
    return [m for m in sys.modules if m == "xformers" or m.startswith("xformers.")]


@pytest.fixture
def clean_backends(monkeypatch):
    """Fresh verdicts before and after; warning lines collected instead of printed; an xformers imported before
    (a real one, on a GPU machine) out of the way, and back afterwards."""
    lines: list[str] = []
    for name in _xformers_modules():
        monkeypatch.delitem(sys.modules, name)  # restored by monkeypatch after this fixture's teardown
    A.clear_backend_cache()
    monkeypatch.setattr(A, "warn", lines.append)
    monkeypatch.delenv("MUM_ATTENTION", raising=False)
    yield lines
    for name in _xformers_modules():  # the fakes this test imported
        del sys.modules[name]
    A.clear_backend_cache()


@pytest.fixture
def broken_xformers(tmp_path, monkeypatch, clean_backends):
    """A broken xformers on the path, and ``auto`` trying it on the CPU as it would on a CUDA device."""
    monkeypatch.syspath_prepend(str(write_fake_xformers(tmp_path)))
    monkeypatch.setattr(A, "candidates", lambda device_type: ["xformers", "cudnn", "sdpa", "math"])
    return clean_backends


def qkv(shape=(2, 3, 17, 16), dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*shape, generator=g).to(dtype) for _ in range(3))


@pytest.mark.parametrize("shape", [(2, 3, 17, 16), (1, 16, 197, 64)])
def test_sdpa_matches_explicit_softmax(shape):
    q, k, v = qkv(shape)
    ref = math_attention(q, k, v)
    out = attention(q, k, v, backend="sdpa")
    assert out.shape == shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # and the attention is not trivially the mean of v (the check could fail)
    assert (ref - v.mean(dim=-2, keepdim=True)).abs().max() > 1e-2


@pytest.mark.skipif(not (torch.cuda.is_available() and backend_works("xformers")), reason="needs CUDA + a working xformers")
@pytest.mark.gpu
def test_xformers_matches_sdpa_on_cuda():
    q, k, v = (torch.randn(2, 8, 300, 64, device="cuda") for _ in range(3))
    torch.testing.assert_close(attention(q, k, v, backend="xformers"), attention(q, k, v, backend="sdpa"), atol=2e-5, rtol=1e-4)


def test_backend_selection(clean_backends, monkeypatch):
    q = torch.zeros(1, 1, 2, 4)
    assert resolve_backend(q) == "sdpa"  # CPU tensors never use xformers or cuDNN
    monkeypatch.setenv("MUM_ATTENTION", "math")
    assert resolve_backend(q) == "math"
    monkeypatch.setenv("MUM_ATTENTION", "nonsense")
    with pytest.raises(AttentionBackendError, match="unknown attention backend 'nonsense'"):
        resolve_backend(q)
    monkeypatch.setenv("MUM_ATTENTION", "cudnn")
    with pytest.raises(AttentionBackendError, match="cuDNN attention needs a CUDA device"):
        resolve_backend(q)
    assert clean_backends == []


def test_attention_module_runs_the_backend_the_environment_names(clean_backends, monkeypatch):
    """MUM_ATTENTION picks the kernel that runs: math never calls SDPA, sdpa never calls the explicit softmax."""
    calls: list[str] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    math = A.math_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", lambda *a, **k: calls.append("sdpa") or sdpa(*a, **k))
    monkeypatch.setattr(A, "math_attention", lambda *a: calls.append("math") or math(*a))
    torch.manual_seed(0)
    module = Attention(32, 4, qk_norm=True).eval()
    x = torch.randn(2, 10, 32)
    outputs = {}
    for name in ("math", "sdpa"):
        monkeypatch.setenv("MUM_ATTENTION", name)
        module(x)  # the first call verifies the backend (its trial runs the reference too)
        calls.clear()
        outputs[name] = module(x)
        assert calls and set(calls) == {name}, f"MUM_ATTENTION={name} ran {calls}"
    torch.testing.assert_close(outputs["sdpa"], outputs["math"], atol=1e-5, rtol=1e-5)


def test_broken_xformers_falls_back_with_one_warning(broken_xformers):
    warnings = broken_xformers
    for shape, dtype in [((2, 3, 17, 16), torch.float32), ((1, 2, 9, 32), torch.float32), ((2, 3, 17, 16), torch.bfloat16)]:
        q, k, v = qkv(shape, dtype)
        out = attention(q, k, v)
        torch.testing.assert_close(out.float(), math_attention(q.float(), k.float(), v.float()), atol=3e-2, rtol=0)
        assert resolve_backend(q) == "sdpa"  # cuDNN cannot run on the CPU either
    assert len(warnings) == 1, warnings
    (line,) = warnings
    assert line.startswith("warning: ") and "\n" not in line
    for part in ("xformers 0.0.35", "built for torch 2.10.0+cu128", f"torch {torch.__version__} installed",
                 "NotImplementedError", "using sdpa attention instead"):
        assert part in line, line


def test_xformers_with_wrong_numbers_is_not_used(tmp_path, monkeypatch, clean_backends):
    """Verified, not assumed: a kernel that runs but disagrees with the reference is not taken."""
    monkeypatch.syspath_prepend(str(write_fake_xformers(tmp_path, kernel="wrong", build_torch=None)))
    monkeypatch.setattr(A, "candidates", lambda device_type: ["xformers", "sdpa"])
    q, k, v = qkv()
    torch.testing.assert_close(attention(q, k, v), math_attention(q, k, v), atol=1e-5, rtol=1e-5)
    assert len(clean_backends) == 1 and "differs from the reference" in clean_backends[0]
    assert "built for an unknown torch" in clean_backends[0]


def test_explicit_broken_xformers_is_an_error(broken_xformers, monkeypatch):
    monkeypatch.setenv("MUM_ATTENTION", "xformers")
    q, k, v = qkv()
    with pytest.raises(AttentionBackendError) as info:
        attention(q, k, v)
    message = str(info.value)
    assert message.startswith("MUM_ATTENTION=xformers:") and "\n" not in message
    assert "xformers 0.0.35" in message and "2.10.0+cu128" in message and "NotImplementedError" in message
    assert broken_xformers == []  # an error, not a warning


def _run_cli(tmp_path: Path, env: dict, patch_candidates: bool) -> subprocess.CompletedProcess:
    """``mum-reconstruct --fast`` on two demo views with a broken xformers on the path; with ``patch_candidates``
    the CPU is treated like a CUDA device (``auto`` tries xformers first)."""
    prelude = "import importlib, sys\n"
    if patch_candidates:
        prelude += ("A = importlib.import_module('mum.layers.attention')\n"
                    "A.candidates = lambda device_type: ['xformers', 'cudnn', 'sdpa', 'math']\n")
    code = prelude + "from app.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    fake = write_fake_xformers(tmp_path / "fake")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(REPO)]), **env}
    return subprocess.run([sys.executable, "-c", code, *map(str, DEMO), "-o", str(tmp_path / "scene.ply"), "--fast",
                           "--device", "cpu", "--size", "64"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_cli_with_broken_xformers_warns_once_and_finishes(tmp_path):
    result = _run_cli(tmp_path, {"MUM_ATTENTION": "auto"}, patch_candidates=True)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "xformers 0.0.35" in warnings[0], result.stderr
    assert "WARNING[XFORMERS]" not in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "scene.ply").is_file()


def test_cli_asked_for_broken_xformers_ends_with_one_error_line(tmp_path):
    result = _run_cli(tmp_path, {"MUM_ATTENTION": "xformers"}, patch_candidates=False)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "MUM_ATTENTION=xformers" in errors[0] and "2.10.0+cu128" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "scene.ply").exists()
