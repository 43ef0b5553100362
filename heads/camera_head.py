"""VGGT's camera head: iterative refinement of the pose encoding from each frame's camera token.

    camera token (entry 0 of the last aggregator layer) [B,S,C] ─token_norm─► c
    repeat num_iterations times:
        e = embed_pose(previous encoding, detached; a learned "empty" encoding at the first iteration)
        shift, scale, gate = Linear(SiLU(e))                      (adaptive LayerNorm modulation)
        x = c + gate · (adaln_norm(c) · (1 + scale) + shift)
        delta = pose_branch(trunk_norm(trunk(x)))                 (trunk: attention across the S cameras)
        encoding = encoding + delta ; output activate_pose(encoding)

The pose encoding is ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` (``absT_quaR_FoV``, see
:mod:`mum.geometry`); activations: translation linear, quaternion linear, FoV ReLU. Key names follow the
official ``CameraHead``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor, nn

from mum.layers import Block, Mlp

from .activations import activate_pose

POSE_ENCODING_DIMS = {"absT_quaR_FoV": 9}


class CameraHead(nn.Module):
    """Camera head (official constructor arguments). ``forward`` returns one activated encoding per iteration."""

    def __init__(
        self,
        dim_in: int = 2048,
        trunk_depth: int = 4,
        pose_encoding_type: str = "absT_quaR_FoV",
        num_heads: int = 16,
        mlp_ratio: float = 4,
        init_values: Optional[float] = 0.01,
        trans_act: str = "linear",
        quat_act: str = "linear",
        fl_act: str = "relu",
    ) -> None:
        super().__init__()
        if pose_encoding_type not in POSE_ENCODING_DIMS:
            raise ValueError(f"unsupported pose encoding {pose_encoding_type!r}")
        self.target_dim = POSE_ENCODING_DIMS[pose_encoding_type]
        self.trans_act, self.quat_act, self.fl_act = trans_act, quat_act, fl_act

        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, self.target_dim))
        self.trunk = nn.Sequential(
            *(Block(dim_in, num_heads, mlp_ratio, init_values=init_values, norm_eps=1e-5) for _ in range(trunk_depth))
        )
        self.token_norm = nn.LayerNorm(dim_in)
        self.trunk_norm = nn.LayerNorm(dim_in)
        self.embed_pose = nn.Linear(self.target_dim, dim_in)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim_in, 3 * dim_in, bias=True))
        self.adaln_norm = nn.LayerNorm(dim_in, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim_in, dim_in // 2, self.target_dim)

    def forward(self, aggregated_tokens_list: Sequence[Tensor], num_iterations: int = 4) -> list[Tensor]:
        """Aggregator token list (entries ``[B, S, N, dim_in]``; only the last entry's token 0 is read, cast to the
        head's dtype)
        → ``num_iterations`` activated pose encodings ``[B, S, 9]``, the last one the most refined."""
        camera_tokens = self.token_norm(aggregated_tokens_list[-1][:, :, 0].to(self.token_norm.weight.dtype))
        return self.refine(camera_tokens, num_iterations)

    def refine(self, tokens: Tensor, num_iterations: int) -> list[Tensor]:
        """Normalised camera tokens ``[B, S, C]`` → list of activated encodings ``[B, S, 9]``."""
        B, S, _ = tokens.shape
        encoding: Optional[Tensor] = None
        outputs = []
        for _ in range(num_iterations):
            if encoding is None:
                condition = self.embed_pose(self.empty_pose_tokens.expand(B, S, -1))
            else:
                encoding = encoding.detach()
                condition = self.embed_pose(encoding)
            shift, scale, gate = self.poseLN_modulation(condition).chunk(3, dim=-1)
            x = tokens + gate * (self.adaln_norm(tokens) * (1 + scale) + shift)
            delta = self.pose_branch(self.trunk_norm(self.trunk(x)))
            encoding = delta if encoding is None else encoding + delta
            outputs.append(activate_pose(encoding, self.trans_act, self.quat_act, self.fl_act))
        return outputs
