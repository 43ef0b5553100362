"""Pre-norm transformer block: ``x + ls1(attn(norm1(x))) → x + ls2(mlp(norm2(x)))``.

One block class for every transformer in the project; key layout ``norm1, attn.{qkv,q_norm,k_norm,proj},
ls1.gamma, norm2, mlp.{fc1,fc2}, ls2.gamma`` as in DINOv2/DINOv3/VGGT/MuM. Layer scale is absent
(no keys) when ``init_values`` is None.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .attention import Attention, RotaryEmbedding
from .layer_scale import LayerScale
from .mlp import Mlp


class Block(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        qk_norm: bool = False,
        init_values: Optional[float] = None,
        norm_eps: float = 1e-6,
        qk_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, proj_bias, qk_norm, qk_norm_eps)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), bias=ffn_bias)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: Tensor, rope: Optional[RotaryEmbedding] = None) -> Tensor:
        """``x`` ``[B, N, C]`` → ``[B, N, C]``."""
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))
