"""The project's one scaled-dot-product attention function and the multi-head attention module.

Every transformer block in the project (MuM encoder/decoder, aggregator, camera head, DINOv2 patch
embedding) calls :func:`attention`. The backend is chosen once per call site from, in order: the
``backend`` argument, the ``MUM_ATTENTION`` environment variable (``auto``, ``xformers``, ``sdpa``,
``math``), then ``auto`` = xformers ``memory_efficient_attention`` for CUDA tensors when xformers is
importable, PyTorch ``scaled_dot_product_attention`` otherwise.
"""

from __future__ import annotations

import functools
import os
from typing import Literal, Optional, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Backend = Literal["auto", "xformers", "sdpa", "math"]
BACKENDS: tuple[str, ...] = ("auto", "xformers", "sdpa", "math")


@functools.lru_cache(maxsize=1)
def _xformers_ops():
    try:
        import xformers.ops as xops  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None
    return xops


def xformers_available() -> bool:
    """True when ``xformers.ops`` imports (it only has kernels for CUDA tensors)."""
    return _xformers_ops() is not None


def resolve_backend(q: Tensor, backend: Optional[str] = None) -> str:
    """The concrete backend (``xformers``, ``sdpa`` or ``math``) used for tensors like ``q``."""
    name = (backend or os.environ.get("MUM_ATTENTION", "auto")).lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "auto":
        return "xformers" if (q.is_cuda and xformers_available()) else "sdpa"
    if name == "xformers" and not xformers_available():
        raise RuntimeError("attention backend 'xformers' requested but xformers is not installed")
    return name


def math_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Explicit softmax(q kᵀ / √d) v, the reference the fused kernels are tested against."""
    scale = q.shape[-1] ** -0.5
    weights = torch.softmax((q * scale) @ k.transpose(-2, -1), dim=-1)
    return weights @ v


def attention(q: Tensor, k: Tensor, v: Tensor, backend: Optional[str] = None) -> Tensor:
    """softmax(q kᵀ / √d) v for ``q, k, v`` of shape ``[B, heads, N, d]``; returns ``[B, heads, N, d]``."""
    chosen = resolve_backend(q, backend)
    if chosen == "xformers":
        xops = _xformers_ops()
        # xformers works on [B, N, heads, d]
        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    if chosen == "math":
        return math_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v)


class RotaryEmbedding(Protocol):
    """Anything that rotates queries and keys ``[B, heads, N, d]`` by their token positions."""

    def __call__(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]: ...


class Attention(nn.Module):
    """Multi-head self-attention: fused ``qkv`` projection, optional QK-LayerNorm, optional RoPE.

    Key layout (``qkv``, ``q_norm``, ``k_norm``, ``proj``) matches DINOv2/DINOv3/VGGT/MuM checkpoints.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = False,
        qk_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: Tensor, rope: Optional[RotaryEmbedding] = None) -> Tensor:
        """``x`` ``[B, N, C]`` → ``[B, N, C]``."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = rope(q, k)
        out = attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))
