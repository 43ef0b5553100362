"""VGGT's alternating-attention aggregator.

Every frame's patch tokens are prefixed with a camera token and ``R`` register tokens (one learned set for the
first frame, which defines the world frame, and one shared by all other frames), then ``depth`` pairs of blocks
alternate attention within each frame ("frame") and across all frames of a scene ("global"):

    images [B,S,3,H,W] in [0,1] ─ImageNet-normalise─► patch embed ─► [B,S,P,C]
    tokens [B,S,1+R+P,C] ─► (frame block i ─► global block i) × depth
    output[i] = concat(frame block i output, global block i output)   [B,S,1+R+P,2C]

Blocks are :class:`mum.layers.Block` with QK-LayerNorm, layer scale and 2D RoPE (:mod:`heads.rope2d`: patches at
``(row+1, col+1)``, special tokens at ``(0, 0)``). The patch embedding is pluggable: ``"conv"`` (one strided
convolution), a DINOv2 ViT name (``"dinov2_vitl14_reg"``: VGGT-1B), any module mapping normalised images
``[N,3,H,W]`` to tokens ``[N,P,C]``, or ``None`` when the caller supplies patch tokens (the MuM encoder in
:class:`heads.model.Reconstructor`). Key names follow the official ``Aggregator`` (``camera_token``,
``register_token``, ``patch_embed.*``, ``frame_blocks.N.*``, ``global_blocks.N.*``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Optional, Union

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mum.image import imagenet_normalize
from mum.layers import Block, PatchEmbed, map_chunks

from .dinov2 import dinov2_by_name
from .rope2d import Rope2D, Rope2DTable

TokenList = list[Optional[Tensor]]


def first_and_other_frames(token: Tensor, batch: int, frames: int) -> Tensor:
    """``[1, 2, X, C]`` → ``[batch, frames, X, C]``: slot 0 for frame 0, slot 1 for frames 1..S-1."""
    first = token[:, :1].expand(batch, 1, *token.shape[2:])
    others = token[:, 1:].expand(batch, frames - 1, *token.shape[2:])
    return torch.cat((first, others), dim=1)


class Aggregator(nn.Module):
    """Alternating frame/global attention over per-frame tokens (official constructor arguments)."""

    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_register_tokens: int = 4,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        patch_embed: Union[str, nn.Module, None] = "dinov2_vitl14_reg",
        aa_order: Sequence[str] = ("frame", "global"),
        aa_block_size: int = 1,
        qk_norm: bool = True,
        rope_freq: float = 100,
        init_values: Optional[float] = 0.01,
    ) -> None:
        super().__init__()
        if depth % aa_block_size:
            raise ValueError(f"depth {depth} is not divisible by aa_block_size {aa_block_size}")
        if sorted(aa_order) != ["frame", "global"]:
            raise ValueError(f"aa_order must order 'frame' and 'global', got {list(aa_order)}")
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.aa_order = list(aa_order)
        self.aa_block_size = aa_block_size
        self.patch_start_idx = 1 + num_register_tokens
        self.grad_checkpointing = False

        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, embed_dim))
        self.register_token = nn.Parameter(torch.zeros(1, 2, num_register_tokens, embed_dim))
        self.patch_embed = self._build_patch_embed(patch_embed, img_size, patch_size, num_register_tokens, embed_dim)
        self.rope = Rope2D(embed_dim // num_heads, rope_freq) if rope_freq > 0 else None

        def block() -> Block:
            return Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias=qkv_bias,
                proj_bias=proj_bias,
                ffn_bias=ffn_bias,
                qk_norm=qk_norm,
                init_values=init_values,
                norm_eps=1e-5,
            )

        self.frame_blocks = nn.ModuleList(block() for _ in range(depth))
        self.global_blocks = nn.ModuleList(block() for _ in range(depth))
        if not self.camera_token.is_meta:
            nn.init.normal_(self.camera_token, std=1e-6)
            nn.init.normal_(self.register_token, std=1e-6)

    @staticmethod
    def _build_patch_embed(
        kind: Union[str, nn.Module, None], img_size: int, patch_size: int, num_register_tokens: int, embed_dim: int
    ) -> Optional[nn.Module]:
        if kind is None or isinstance(kind, nn.Module):
            return kind
        if kind == "conv":
            return PatchEmbed(patch_size, embed_dim)
        return dinov2_by_name(kind, img_size=img_size, patch_size=patch_size, num_register_tokens=num_register_tokens)

    # ------------------------------------------------------------------------------------------------ forward
    def forward(
        self,
        images: Tensor,
        frames_chunk_size: Optional[int] = None,
        keep_layers: Optional[Collection[int]] = None,
    ) -> tuple[TokenList, int]:
        """``images`` ``[B, S, 3, H, W]`` (or ``[S, 3, H, W]``) in [0, 1] → (token list, ``patch_start_idx``).

        The list has ``depth`` entries ``[B, S, 1+R+P, 2C]``; with ``keep_layers`` only those indices are
        kept (the others are ``None``, saving memory). ``frames_chunk_size`` bounds the frames patch-embedded
        at once."""
        if images.ndim == 4:
            images = images.unsqueeze(0)
        grid = (images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size)
        return self.aggregate(self.embed_images(images, frames_chunk_size), grid, keep_layers)

    def embed_images(
        self, images: Tensor, frames_chunk_size: Optional[int] = None, device: Optional[torch.device] = None
    ) -> Tensor:
        """``[B, S, 3, H, W]`` in [0, 1] → ImageNet-normalised, patch-embedded ``[B, S, P, C]``; with ``device``,
        each chunk of frames is moved there first."""
        if self.patch_embed is None:
            raise RuntimeError("this aggregator has no patch embedding; call aggregate() with patch tokens")

        def embed(frames: Tensor) -> Tensor:
            out = self.patch_embed(imagenet_normalize(frames if device is None else frames.to(device)))
            if isinstance(out, dict):
                out = out["x_norm_patchtokens"]
            return out.flatten(1, 2) if out.ndim == 4 else out  # conv embed gives [N, h, w, C]

        return map_chunks(embed, images, frames_chunk_size, batch_dims=2)

    def aggregate(
        self, patch_tokens: Tensor, grid_hw: tuple[int, int], keep_layers: Optional[Collection[int]] = None
    ) -> tuple[TokenList, int]:
        """Patch tokens ``[B, S, P, C]`` on a ``grid_hw`` grid (row-major) → (token list, ``patch_start_idx``)."""
        B, S, P, C = patch_tokens.shape
        if P != grid_hw[0] * grid_hw[1]:
            raise ValueError(f"{P} patch tokens do not fill a {grid_hw[0]}x{grid_hw[1]} grid")
        special = torch.cat(
            (first_and_other_frames(self.camera_token, B, S), first_and_other_frames(self.register_token, B, S)), dim=2
        )
        tokens = torch.cat((special.to(patch_tokens.dtype), patch_tokens), dim=2)
        N = tokens.shape[2]
        frame_rope: Optional[Rope2DTable] = None
        global_rope: Optional[Rope2DTable] = None
        if self.rope is not None:
            frame_rope = self.rope.grid_table(*grid_hw, self.patch_start_idx, patch_tokens.device)
            global_rope = frame_rope.repeat(S)

        outputs: TokenList = []
        for group in range(self.depth // self.aa_block_size):
            blocks = range(group * self.aa_block_size, (group + 1) * self.aa_block_size)
            inter: dict[str, list[Tensor]] = {}
            for kind in self.aa_order:
                if kind == "frame":
                    x = tokens.reshape(B * S, N, C)
                    layers, rope = self.frame_blocks, frame_rope
                else:
                    x = tokens.reshape(B, S * N, C)
                    layers, rope = self.global_blocks, global_rope
                inter[kind] = []
                for i in blocks:
                    x = self._run_block(layers[i], x, rope)
                    inter[kind].append(x.reshape(B, S, N, C))
                tokens = inter[kind][-1]
            for j, i in enumerate(blocks):
                keep = keep_layers is None or i in keep_layers or i - self.depth in keep_layers
                outputs.append(torch.cat((inter["frame"][j], inter["global"][j]), dim=-1) if keep else None)
        return outputs, self.patch_start_idx

    def _run_block(self, block: Block, x: Tensor, rope: Optional[Rope2DTable]) -> Tensor:
        if self.grad_checkpointing and self.training:
            return checkpoint(block, x, rope, use_reentrant=False)
        return block(x, rope)
