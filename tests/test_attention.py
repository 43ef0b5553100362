"""The one attention function: every backend that runs here agrees with the explicit-softmax reference."""

from __future__ import annotations

import pytest
import torch

from mum.layers import Attention, attention, math_attention, resolve_backend, xformers_available


@pytest.mark.parametrize("shape", [(2, 3, 17, 16), (1, 16, 197, 64)])
def test_sdpa_matches_explicit_softmax(shape):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(*shape, generator=g) for _ in range(3))
    ref = math_attention(q, k, v)
    out = attention(q, k, v, backend="sdpa")
    assert out.shape == shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # and the attention is not trivially the mean of v (the check could fail)
    assert (ref - v.mean(dim=-2, keepdim=True)).abs().max() > 1e-2


@pytest.mark.skipif(not (torch.cuda.is_available() and xformers_available()), reason="needs CUDA + xformers")
@pytest.mark.gpu
def test_xformers_matches_sdpa_on_cuda():
    q, k, v = (torch.randn(2, 8, 300, 64, device="cuda") for _ in range(3))
    torch.testing.assert_close(attention(q, k, v, backend="xformers"), attention(q, k, v, backend="sdpa"), atol=2e-5, rtol=1e-4)


def test_backend_selection(monkeypatch):
    q = torch.zeros(1, 1, 2, 4)
    assert resolve_backend(q) == "sdpa"  # CPU tensors never use xformers
    monkeypatch.setenv("MUM_ATTENTION", "math")
    assert resolve_backend(q) == "math"
    monkeypatch.setenv("MUM_ATTENTION", "nonsense")
    with pytest.raises(ValueError, match="unknown attention backend"):
        resolve_backend(q)
    if not xformers_available():
        with pytest.raises(RuntimeError, match="xformers"):
            resolve_backend(q, "xformers")


def test_attention_module_uses_selected_backend(monkeypatch):
    torch.manual_seed(0)
    module = Attention(32, 4, qk_norm=True).eval()
    x = torch.randn(2, 10, 32)
    monkeypatch.setenv("MUM_ATTENTION", "math")
    ref = module(x)
    monkeypatch.setenv("MUM_ATTENTION", "sdpa")
    torch.testing.assert_close(module(x), ref, atol=1e-5, rtol=1e-5)
