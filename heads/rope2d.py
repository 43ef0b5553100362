"""2D rotary position embedding of VGGT (RoPE on integer patch coordinates, base 100).

Each token has an integer position ``(y, x)``. The head dimension ``d`` is split in two halves: the first is
rotated by ``y``, the second by ``x``. Within a half of width ``D = d/2`` the pairs ``(i, i + D/2)`` are rotated
("rotate-half") by angle ``pos · base^(-2i/D)``, ``i < D/2``. The aggregator puts patches at ``(row+1, col+1)``
and its camera/register tokens at ``(0, 0)`` (no rotation).

:class:`Rope2D` builds a :class:`Rope2DTable` for a set of positions; the table is the callable
``(q, k) -> (q, k)`` that :class:`mum.layers.Attention` accepts as ``rope``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def _swap_quarters(x: Tensor) -> Tensor:
    """``[a1, a2, b1, b2] → [a2, a1, b2, b1]`` along the last dimension (four equal parts)."""
    return x.unflatten(-1, (2, 2, x.shape[-1] // 4)).flip(-2).flatten(-3)


@dataclass
class Rope2DTable:
    """Cosines ``cos`` and signed sines ``sin`` ``[N, d]`` (float32) for the ``N`` tokens of a sequence, shared by
    batch and heads. ``sin`` carries the rotate-half sign: rotating is ``x·cos + swap_quarters(x)·sin``, i.e.
    ``[a1, a2]·cos + [-a2, a1]·sin`` inside each half."""

    cos: Tensor
    sin: Tensor

    def __call__(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return self.rotate(q), self.rotate(k)

    def rotate(self, x: Tensor) -> Tensor:
        """Rotate ``x`` ``[B, heads, N, d]``; the result has ``x``'s dtype."""
        cos, sin = self.cos.to(x.dtype), self.sin.to(x.dtype)
        return x * cos + _swap_quarters(x) * sin

    def repeat(self, times: int) -> "Rope2DTable":
        """The table of a sequence made of ``times`` copies of this one (global attention over frames)."""
        return Rope2DTable(self.cos.repeat(times, 1), self.sin.repeat(times, 1))


class Rope2D:
    """Table builder for head dimension ``head_dim`` (divisible by 4) and frequency base ``base``."""

    def __init__(self, head_dim: int, base: float = 100.0) -> None:
        if head_dim % 4:
            raise ValueError(f"2D RoPE needs a head dim divisible by 4, got {head_dim}")
        self.head_dim = head_dim
        self.base = base

    def table(self, positions: Tensor) -> Rope2DTable:
        """``positions`` ``[N, 2]`` integer ``(y, x)`` → table ``[N, head_dim]``."""
        half = self.head_dim // 2
        inv_freq = 1.0 / (self.base ** (torch.arange(0, half, 2, device=positions.device).float() / half))
        tables = []
        for axis in range(2):
            angles = positions[:, axis].float()[:, None] * inv_freq[None, :]  # [N, D/2]
            tables.append(torch.cat((angles, angles), dim=-1))  # [N, D]
        angles = torch.cat(tables, dim=-1)  # [N, d]: y half then x half
        sign = torch.tensor([-1.0, 1.0, -1.0, 1.0], device=angles.device).repeat_interleave(self.head_dim // 4)
        return Rope2DTable(angles.cos(), angles.sin() * sign)

    def grid_table(self, grid_h: int, grid_w: int, num_special: int, device: torch.device | str) -> Rope2DTable:
        """Table for one frame: ``num_special`` tokens at ``(0, 0)``, then the ``grid_h × grid_w`` patches
        row-major at ``(row + 1, col + 1)``."""
        return self.table(patch_positions(grid_h, grid_w, num_special, device))


def patch_positions(grid_h: int, grid_w: int, num_special: int, device: torch.device | str = "cpu") -> Tensor:
    """``[num_special + grid_h·grid_w, 2]`` integer ``(y, x)``: special tokens at 0, patches shifted by 1."""
    ys, xs = torch.meshgrid(
        torch.arange(grid_h, device=device), torch.arange(grid_w, device=device), indexing="ij"
    )
    patches = torch.stack((ys, xs), dim=-1).reshape(-1, 2) + 1
    special = torch.zeros(num_special, 2, dtype=patches.dtype, device=device)
    return torch.cat((special, patches), dim=0)
