"""Axial 2D rotary position embedding of MuM (DINOv3 formulation).

Patch-centre coordinates are normalised to [-1, 1] separately along height and width; channel pairs
``(i, i + d/2)`` are rotated ("rotate-half") by angles ``2π·coord / period`` with periods
``base^(2j / (d/2))``, the first ``d/4`` periods for y and the next ``d/4`` for x. Computation runs in
the embedding's ``dtype`` (the released encoder uses bfloat16), exactly as the reference does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn


def rotate_half(x: Tensor) -> Tensor:
    """``[x1, x2] → [-x2, x1]`` along the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


@dataclass
class RopeTable:
    """Sines and cosines for the last ``N_rot`` tokens of a sequence: ``sin, cos`` of shape ``[N_rot, d]``
    (shared by the batch) or ``[B, 1, N_rot, d]`` (per sample). Leading tokens (cls) are not rotated."""

    sin: Tensor
    cos: Tensor

    def __call__(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return self.rotate(q), self.rotate(k)

    def rotate(self, x: Tensor) -> Tensor:
        """Rotate ``x`` ``[B, heads, N, d]`` in the table's dtype, return it in ``x``'s dtype."""
        dtype = x.dtype
        x = x.to(self.sin.dtype)
        prefix = x.shape[-2] - self.sin.shape[-2]
        if prefix < 0:
            raise ValueError(f"RoPE table has {self.sin.shape[-2]} positions for {x.shape[-2]} tokens")
        tail = x[:, :, prefix:]
        tail = tail * self.cos + rotate_half(tail) * self.sin
        return torch.cat([x[:, :, :prefix], tail], dim=-2).to(dtype)

    def gather(self, ids_keep: Tensor) -> "RopeTable":
        """Per-sample table for the kept patches ``ids_keep`` ``[B, L_keep]`` → ``[B, 1, L_keep, d]``."""
        return RopeTable(self.sin[ids_keep].unsqueeze(1), self.cos[ids_keep].unsqueeze(1))

    def tiled_with_special(self, num_special: int, num_frames: int) -> "RopeTable":
        """Table for a global sequence of ``num_frames`` × (``num_special`` special tokens + patches).

        Special tokens get ``sin = cos = 0``, as in the reference MuM decoder: their rotated queries and
        keys are zero, so in global attention they attend uniformly and are attended with logit 0.
        """
        zeros = self.sin.new_zeros(num_special, self.sin.shape[-1])
        sin = torch.cat([zeros, self.sin]).repeat(num_frames, 1)
        cos = torch.cat([zeros, self.cos]).repeat(num_frames, 1)
        return RopeTable(sin, cos)


class AxialRope(nn.Module):
    """Builds :class:`RopeTable` for an ``H × W`` patch grid. Buffer key: ``periods`` ``[d/4]``."""

    def __init__(
        self, embed_dim: int, num_heads: int, base: float = 100.0, dtype: Optional[torch.dtype] = None
    ) -> None:
        super().__init__()
        head_dim = embed_dim // num_heads
        if head_dim % 4:
            raise ValueError(f"axial RoPE needs a head dim divisible by 4, got {head_dim}")
        self.head_dim = head_dim
        self.base = base
        self.dtype = dtype
        self.register_buffer("periods", torch.empty(head_dim // 4, dtype=dtype), persistent=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.periods.is_meta:
            return
        exponent = 2 * torch.arange(self.head_dim // 4, dtype=self.dtype) / (self.head_dim // 2)
        self.periods.data = self.base**exponent

    def forward(self, H: int, W: int) -> RopeTable:
        dd = {"device": self.periods.device, "dtype": self.dtype}
        coords_h = torch.arange(0.5, H, **dd) / H
        coords_w = torch.arange(0.5, W, **dd) / W
        coords = torch.stack(torch.meshgrid(coords_h, coords_w, indexing="ij"), dim=-1).flatten(0, 1)
        coords = 2.0 * coords - 1.0  # [HW, 2] in [-1, 1]
        angles = 2 * math.pi * coords[:, :, None] / self.periods[None, None, :]  # [HW, 2, d/4]
        angles = angles.flatten(1, 2).tile(2)  # [HW, d]
        return RopeTable(torch.sin(angles), torch.cos(angles))
