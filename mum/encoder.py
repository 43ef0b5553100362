"""The MuM vision transformer encoder (ViT with cls token and axial 2D RoPE).

State-dict keys are exactly those of the released ``MuM_ViTLarge.pth``: ``cls_token``,
``patch_embed.proj.*``, ``rope_embed.periods``, ``blocks.{i}.*``, ``norm.*``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .config import EncoderConfig, encoder_config
from .image import as_batched_views, imagenet_normalize
from .layers import AxialRope, Block, PatchEmbed, RopeTable, map_chunks


@dataclass
class EncoderFeatures:
    """Features of images ``[*lead, 3, H, W]`` where ``lead`` is ``(N,)`` or ``(B, S)``; ``P = H/p · W/p``.

    ``patch_tokens`` ``[*lead, P, C]`` and ``cls_token`` ``[*lead, C]`` come from the final normed output;
    ``intermediate`` holds the normed patch tokens ``[*lead, P, C]`` of the requested blocks, in order.
    """

    patch_tokens: Tensor
    cls_token: Tensor
    intermediate: list[Tensor]
    grid_hw: tuple[int, int]


class MuMEncoder(nn.Module):
    """ViT encoder. ``forward(x)`` takes ImageNet-normalised ``[N, 3, H, W]`` and returns patch tokens."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_size = cfg.patch_size
        self.embed_dim = cfg.embed_dim
        self.num_heads = cfg.num_heads
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.rope_embed = AxialRope(cfg.embed_dim, cfg.num_heads, cfg.rope_base, dtype=cfg.torch_rope_dtype)
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, norm_eps=cfg.norm_eps) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.grad_checkpointing = False
        self.init_weights()

    # ------------------------------------------------------------------ init
    def init_weights(self) -> None:
        """MAE/DINOv3 initialisation: trunc-normal(0.02) linears, uniform patch conv, N(0, 0.02) tokens."""
        if self.cls_token.is_meta:
            return
        nn.init.normal_(self.cls_token, std=0.02)
        k = 1 / (3 * self.patch_size**2)
        nn.init.uniform_(self.patch_embed.proj.weight, -math.sqrt(k), math.sqrt(k))
        nn.init.uniform_(self.patch_embed.proj.bias, -math.sqrt(k), math.sqrt(k))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                m.reset_parameters()
            elif isinstance(m, AxialRope):
                m.reset_parameters()

    # --------------------------------------------------------------- forward
    def embed(self, x: Tensor) -> tuple[Tensor, RopeTable, tuple[int, int]]:
        """Normalised images ``[N, 3, H, W]`` → patch tokens ``[N, HW, C]``, their RoPE table, grid ``(h, w)``."""
        x = self.patch_embed(x)
        h, w = x.shape[1:3]
        return x.flatten(1, 2), self.rope_embed(h, w), (h, w)

    def with_cls(self, x: Tensor) -> Tensor:
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)

    def run_blocks(self, x: Tensor, rope: RopeTable, keep: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
        """Apply all blocks; return the last output and the (pre-norm) outputs of blocks ``keep``."""
        kept = []
        for i, blk in enumerate(self.blocks):
            if self.grad_checkpointing and self.training:
                x = checkpoint(blk, x, rope, use_reentrant=False)
            else:
                x = blk(x, rope)
            if i in keep:
                kept.append(x)
        return x, kept

    def forward(self, x: Tensor) -> Tensor:
        """Normalised ``[N, 3, H, W]`` → normed patch tokens ``[N, P, C]``."""
        return self.forward_features(x)["x_norm_patchtokens"]

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        """Official API: normalised ``[N, 3, H, W]`` → ``x_norm_cls_token`` ``[N, C]``,
        ``x_norm_patchtokens`` ``[N, P, C]``, ``x_prenorm`` ``[N, 1+P, C]`` (cls first)."""
        tokens, rope, _ = self.embed(x)
        x_prenorm, _ = self.run_blocks(self.with_cls(tokens), rope)
        x_norm = self.norm(x_prenorm)
        return {"x_norm_cls_token": x_norm[:, 0], "x_norm_patchtokens": x_norm[:, 1:], "x_prenorm": x_prenorm}

    def get_intermediate_layers(
        self,
        x: Tensor,
        n: Union[int, Sequence[int]] = 1,
        reshape: bool = False,
        return_class_token: bool = False,
        norm: bool = True,
    ) -> tuple:
        """Official API: outputs of the last ``n`` blocks (or of block indices ``n``), patch tokens only."""
        depth = len(self.blocks)
        take = list(range(depth - n, depth)) if isinstance(n, int) else sorted(n)
        tokens, rope, (h, w) = self.embed(x)
        _, outs = self.run_blocks(self.with_cls(tokens), rope, keep=take)
        if norm:
            outs = [self.norm(o) for o in outs]
        cls = [o[:, 0] for o in outs]
        patches = [o[:, 1:] for o in outs]
        if reshape:
            patches = [p.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous() for p in patches]
        if return_class_token:
            return tuple(zip(patches, cls))
        return tuple(patches)

    # ----------------------------------------------------------- user API
    @torch.inference_mode()
    def extract(
        self,
        images: Tensor,
        layers: Optional[Sequence[int]] = None,
        normalize: bool = True,
        chunk_size: Optional[int] = None,
    ) -> EncoderFeatures:
        """Features of RGB images in [0, 1], ``[N, 3, H, W]`` or ``[B, S, 3, H, W]`` (H, W multiples of 16).

        ``layers``: block indices whose normed patch tokens go into ``intermediate``, in the order given
        (negative counts from the end; ``ValueError`` outside ``[-depth, depth)``). ``normalize``: apply
        ImageNet normalisation first (set False for pre-normalised input). ``chunk_size``: encode this many
        images at a time (memory linear in the image count).
        """
        flat, lead = as_batched_views(images)
        depth = len(self.blocks)
        bad = [i for i in (layers or ()) if not -depth <= i < depth]
        if bad:
            raise ValueError(f"layers {bad} out of range: the encoder has {depth} blocks (0..{depth - 1}, or negative from the end)")
        wanted = [i % depth for i in (layers or ())]
        keep = sorted(set(wanted))

        def encode(x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
            if normalize:
                x = imagenet_normalize(x)
            tokens, rope, hw = self.embed(x)
            grids.append(hw)
            last, kept = self.run_blocks(self.with_cls(tokens), rope, keep=keep)
            last = self.norm(last)
            return last[:, 1:], last[:, 0], [self.norm(o)[:, 1:] for o in kept]

        grids: list[tuple[int, int]] = []  # the token grid (h, w), the same for every chunk
        patch, cls, inter = map_chunks(encode, flat, chunk_size)

        def unflat(t: Tensor) -> Tensor:
            return t.reshape(*lead, *t.shape[1:])

        return EncoderFeatures(
            patch_tokens=unflat(patch),
            cls_token=unflat(cls),
            intermediate=[unflat(inter[keep.index(i)]) for i in wanted],
            grid_hw=grids[0],
        )


def build_encoder(name_or_cfg: Union[str, EncoderConfig], device: Optional[torch.device | str] = None) -> MuMEncoder:
    """Encoder from a preset name (``vitl16``, ``vitb16``, ``vits16``, ``tiny``) or a config.

    ``device="meta"`` builds it without allocating memory (for key/shape checks)."""
    cfg = encoder_config(name_or_cfg) if isinstance(name_or_cfg, str) else name_or_cfg
    with torch.device(device or "cpu"):
        return MuMEncoder(cfg)
