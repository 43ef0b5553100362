"""DINOv2 vision transformer with register tokens: the patch embedding of VGGT-1B (``dinov2_vitl14_reg``).

Token layout ``[cls, R registers, patches]``. A learned position embedding for a square grid (cls + M×M)
is added before the registers are inserted; its patch part is resized bicubically (with antialias) to the
input's ``(H/p, W/p)`` grid (``interpolate_offset`` 0: resize to that exact size). Pre-norm blocks with
layer scale (LayerNorm eps 1e-6, no QK-norm, no RoPE) go through the project's shared
:class:`mum.layers.Block`. Key names follow the official checkpoints (``cls_token``, ``pos_embed``,
``register_tokens``, ``mask_token``, ``patch_embed.proj``, ``blocks.N``, ``norm``).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mum.layers import Block, PatchEmbed


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT. ``forward_features(x)`` takes ImageNet-normalised ``[N, 3, H, W]`` (H, W multiples of
    ``patch_size``) and returns ``x_norm_clstoken`` ``[N, C]``, ``x_norm_regtokens`` ``[N, R, C]``,
    ``x_norm_patchtokens`` ``[N, P, C]``, ``x_prenorm`` ``[N, 1+R+P, C]``."""

    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        init_values: Optional[float] = 1.0,
        num_register_tokens: int = 4,
        interpolate_antialias: bool = True,
        interpolate_offset: float = 0.0,
        block_chunks: int = 0,
        qk_norm: bool = False,
    ) -> None:
        super().__init__()
        if block_chunks:
            raise ValueError("block_chunks > 0 (FSDP-wrapped block groups) is not supported")
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset
        grid = img_size // patch_size
        # Parameters first, in the official order (state-dict order matches the released checkpoints).
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim)) if num_register_tokens else None
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim), requires_grad=False)  # unused; kept for the key layout
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias=qkv_bias,
                proj_bias=proj_bias,
                ffn_bias=ffn_bias,
                qk_norm=qk_norm,
                init_values=init_values,
                norm_eps=1e-6,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.grad_checkpointing = False
        self.init_weights()

    def init_weights(self) -> None:
        """DINOv2 initialisation: trunc-normal(0.02) position embedding and linears, N(0, 1e-6) cls/registers."""
        if self.cls_token.is_meta:
            return
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def interpolate_pos_encoding(self, num_patches: int, grid_h: int, grid_w: int) -> Tensor:
        """Position embedding ``[1, 1 + grid_h·grid_w, C]`` for an ``grid_h × grid_w`` patch grid."""
        n_stored = self.pos_embed.shape[1] - 1
        if num_patches == n_stored and grid_h == grid_w:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        side = int(math.sqrt(n_stored))
        if side * side != n_stored:
            raise ValueError(f"pos_embed holds {n_stored} patch positions, not a square grid")
        if self.interpolate_offset:
            scale = ((grid_h + self.interpolate_offset) / side, (grid_w + self.interpolate_offset) / side)
            kwargs: dict = {"scale_factor": scale}
        else:
            kwargs = {"size": (grid_h, grid_w)}
        patch = pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        patch = F.interpolate(patch, mode="bicubic", antialias=self.interpolate_antialias, **kwargs)
        patch = patch.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat((pos_embed[:, :1], patch), dim=1).to(self.pos_embed.dtype)

    def prepare_tokens(self, x: Tensor) -> Tensor:
        """Normalised ``[N, 3, H, W]`` → ``[N, 1 + R + P, C]`` (position embedding added, registers inserted)."""
        patches = self.patch_embed(x)  # [N, h, w, C]
        grid_h, grid_w = patches.shape[1:3]
        tokens = patches.flatten(1, 2)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolate_pos_encoding(grid_h * grid_w, grid_h, grid_w).to(tokens.dtype)
        if self.register_tokens is not None:
            registers = self.register_tokens.expand(tokens.shape[0], -1, -1)
            tokens = torch.cat((tokens[:, :1], registers, tokens[:, 1:]), dim=1)
        return tokens

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """See the class docstring."""
        x = self.prepare_tokens(x)
        for blk in self.blocks:
            if self.grad_checkpointing and self.training:
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        x_norm = self.norm(x)
        r = self.num_register_tokens
        return {
            "x_norm_clstoken": x_norm[:, 0],
            "x_norm_regtokens": x_norm[:, 1 : r + 1],
            "x_norm_patchtokens": x_norm[:, r + 1 :],
            "x_prenorm": x,
        }

    def forward(self, x: Tensor) -> Tensor:
        """Normalised ``[N, 3, H, W]`` → normed patch tokens ``[N, P, C]``."""
        return self.forward_features(x)["x_norm_patchtokens"]


# (embed_dim, depth, num_heads) of the DINOv2 sizes VGGT can use as its patch embedding.
DINOV2_SIZES: dict[str, tuple[int, int, int]] = {
    "dinov2_vits14_reg": (384, 12, 6),
    "dinov2_vitb14_reg": (768, 12, 12),
    "dinov2_vitl14_reg": (1024, 24, 16),
}


def dinov2_by_name(
    name: str, img_size: int = 518, patch_size: int = 14, num_register_tokens: int = 4
) -> DinoVisionTransformer:
    """The DINOv2 ViT ``name`` built as VGGT's aggregator builds it (antialiased bicubic position-embedding
    resize, ``interpolate_offset`` 0, layer scale init 1)."""
    try:
        embed_dim, depth, num_heads = DINOV2_SIZES[name]
    except KeyError:
        raise ValueError(f"unknown patch embedding {name!r}; choose 'conv' or one of {', '.join(DINOV2_SIZES)}") from None
    return DinoVisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=4,
        num_register_tokens=num_register_tokens,
        interpolate_antialias=True,
        interpolate_offset=0.0,
        init_values=1.0,
    )
